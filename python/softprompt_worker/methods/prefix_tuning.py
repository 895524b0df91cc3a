"""Prefix tuning: trainable key/value prefixes in every attention layer.

Li & Liang, "Prefix-Tuning: Optimizing Continuous Prompts for Generation" (ACL 2021),
https://arxiv.org/abs/2101.00190. Every attention module gets ``num_virtual_tokens`` extra key and
value vectors that all queries can attend to (``prefix_attention``); the model stays frozen. The
prefix is optionally reparameterised during training by an MLP (Embedding -> Linear -> Tanh -> Linear,
Sec. 4.3 of the paper), which the paper found needed for stable optimisation.

Where we differ from PEFT's ``PrefixTuningConfig`` and why:

- Encoder–decoders (T5, BART) get prefixes on encoder self-attention, decoder self-attention AND
  decoder cross-attention, as in the paper (Sec. 4.2: "we prepend prefixes to both the encoder and
  the decoder"). PEFT only prefixes the decoder through ``past_key_values``, because the cache is its
  only injection point; we inject inside attention, which reaches the encoder too.
- Encoder and enc–dec decoder positions never shift because of a prefix: a prefix has no position
  (T5 gets a zero relative bias for prefix slots, BART's learned positions stay 0-based). Decoder-only
  models keep PEFT's convention: real tokens start at position ``num_virtual_tokens``, as if the prefix
  were the first tokens; exported decoder prefixes therefore behave identically under PEFT.
- The reparameterisation MLP is KEPT in the soft state (``embedding``, ``transform.*``) so training
  resumes exactly; PEFT saves only the projected prefix. ``peft_io`` exports the projected prefix.
- Grouped-query attention: prefixes have ``num_key_value_heads`` heads (Llama, Mistral, Qwen...).
- One batch may mix rows with different prefixes (or none): shorter prefixes are masked
  (``injection.batch_prefixes``).

Example::

    method = PrefixTuning(PrefixTuningConfig(num_virtual_tokens=10, prefix_projection=True), frozen)
    out = method.forward_lm(input_ids, attention_mask, labels=labels)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.models.kv_cache import cache_of, layer_key_values
from softprompt_worker.fields import option
from softprompt_worker.limits import MAX_HIDDEN_SIZE, MAX_NUM_VIRTUAL_TOKENS, MAX_SEED
from softprompt_worker.models import FrozenModel
from softprompt_worker.methods.base import LMSoftPromptMethod, MethodConfig
from softprompt_worker.methods.injection import Injection
from softprompt_worker.methods.workload import Job, Pass, lm_rows

SITES = ("self", "encoder", "decoder", "cross")  # decoder-only self-attn; enc-dec encoder/decoder/cross
INITS = ("random", "text")


@dataclass
class PrefixTuningConfig(MethodConfig):
    """Options of prefix tuning.

    Attributes:
        num_virtual_tokens: prefix length per attention module (paper: 10 for table-to-text, 200 for
            summarisation; PEFT examples use 20–30).
        prefix_projection: reparameterise through an MLP while training (paper: yes; PEFT default: no).
        projection_hidden_size: the MLP's hidden width; None = the model's key/value width
            (PEFT's ``encoder_hidden_size`` default). The paper used 512–800.
        seed: seeds the initialisation (PEFT's: ``nn.Embedding``/``nn.Linear`` defaults).
        init: ``"random"``: PEFT's N(0, 1) prefix; ``"text"``: Li & Liang's initialisation with the
            activations of real words (Sec. 7.2: it matters most with little data): the keys and values the
            frozen model computes for ``init_text``'s tokens (repeated or cut to ``num_virtual_tokens``), so
            the untrained prefix acts exactly like that text written before the input. Decoder-only models,
            without ``prefix_projection`` (an MLP's output cannot be set to given activations).
        init_text: the text for ``init="text"``, e.g. ``"Classify the package by its section:"``.
    """

    num_virtual_tokens: int = option(20, gt=0, le=MAX_NUM_VIRTUAL_TOKENS)
    prefix_projection: bool = option(False)
    projection_hidden_size: int | None = option(None, gt=0, le=MAX_HIDDEN_SIZE)
    seed: int = option(0, ge=0, le=MAX_SEED)
    init: str = option("random", choices=INITS)
    init_text: str | None = option(None, non_empty=True)

    def validate(self) -> None:
        self.check_init(INITS)
        if self.init == "text" and self.prefix_projection:
            raise InvalidArgumentError("init: 'text' sets the prefix itself; it needs prefix_projection false")


@dataclass(frozen=True)
class Target:
    """One attention module that receives a prefix."""

    site: str  # one of SITES
    layer: int
    module: nn.Module
    kv_heads: int
    head_dim: int


def attention_targets(model) -> list[Target]:
    """The attention modules of ``model`` in prefix order: decoder-only layers; or encoder self-attn,
    then decoder self-attn, then cross-attn (layer order within each)."""
    cfg = model.config
    kind = cfg.model_type
    if kind in ("t5", "mt5"):
        heads, dim = cfg.num_heads, cfg.d_kv
        enc = [(b.layer[0].SelfAttention, "encoder") for b in model.encoder.block]
        dec = [(b.layer[0].SelfAttention, "decoder") for b in model.decoder.block]
        cross = [(b.layer[1].EncDecAttention, "cross") for b in model.decoder.block]
        return _targets(enc + dec + cross, heads, dim)
    if getattr(cfg, "is_encoder_decoder", False) and hasattr(model, "model") and hasattr(model.model, "encoder"):
        # BART family (bart, mbart, marian, pegasus): encoder.layers[i].self_attn, decoder: self_attn + encoder_attn
        heads = cfg.encoder_attention_heads
        dim = cfg.d_model // heads
        enc = [(l.self_attn, "encoder") for l in model.model.encoder.layers]
        dec = [(l.self_attn, "decoder") for l in model.model.decoder.layers]
        cross = [(l.encoder_attn, "cross") for l in model.model.decoder.layers]
        return _targets(enc + dec + cross, heads, dim)
    if kind == "gpt2":
        heads = cfg.n_head
        return _targets([(block.attn, "self") for block in model.transformer.h], heads, cfg.n_embd // heads)
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is not None and all(hasattr(l, "self_attn") for l in layers):
        # Llama-style decoders (llama, mistral, qwen2, gemma, ...): grouped-query attention
        heads = cfg.num_attention_heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        return _targets([(l.self_attn, "self") for l in layers], kv_heads, dim)
    raise InvalidArgumentError(f"prefix_tuning: model type {kind!r} is not supported "
                               "(gpt2, llama-style decoders, t5, bart-style encoder-decoders)")


def _targets(modules, kv_heads: int, head_dim: int) -> list[Target]:
    counters: dict[str, int] = {}
    out = []
    for module, site in modules:
        out.append(Target(site, counters.get(site, 0), module, kv_heads, head_dim))
        counters[site] = counters.get(site, 0) + 1
    return out


class PrefixTuning(LMSoftPromptMethod):
    """Parameters: ``prefix`` (P, targets * 2 * kv_width) without projection; with projection
    ``embedding.weight`` (P, kv_width) and ``transform`` (Linear, Tanh, Linear) producing it.

    The flat layout per virtual token is ``[target][key|value][kv_head][head_dim]``, PEFT's layout
    (``num_layers * 2 * token_dim``) for decoder-only models.
    """

    name: ClassVar[str] = "prefix_tuning"
    config_class: ClassVar[type[MethodConfig]] = PrefixTuningConfig
    tasks: ClassVar[frozenset[str]] = frozenset({"generation", "classification"})
    peft_type: ClassVar[str | None] = "PREFIX_TUNING"

    def __init__(self, config: PrefixTuningConfig, frozen: FrozenModel):
        super().__init__(config, frozen)
        self.targets = attention_targets(frozen.model)
        widths = {t.kv_heads * t.head_dim for t in self.targets}
        if len(widths) != 1:
            raise InvalidArgumentError(f"prefix_tuning: attention modules have different key widths {sorted(widths)}")
        self.kv_width = widths.pop()  # kv_heads * head_dim (PEFT's token_dim)
        P, out_width = config.num_virtual_tokens, len(self.targets) * 2 * self.kv_width
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            if config.prefix_projection:
                hidden = config.projection_hidden_size or self.kv_width
                self.embedding = nn.Embedding(P, self.kv_width)
                self.transform = nn.Sequential(nn.Linear(self.kv_width, hidden), nn.Tanh(),
                                               nn.Linear(hidden, out_width))
            elif config.init == "text":
                self.prefix = nn.Parameter(self._text_prefix())  # (P, T * 2 * kv_width)
            else:
                self.prefix = nn.Parameter(torch.randn(P, out_width))  # (P, T * 2 * kv_width), nn.Embedding's N(0, 1)
        self.to(frozen.device)

    def _text_prefix(self) -> torch.Tensor:
        """The frozen model's keys/values for ``init_text`` in the flat layout ``(P, T * 2 * kv_width)``.
        Decoder-only prefixes sit at positions 0..P-1 (real tokens start at P), where the text is computed:
        the untrained prefix equals the text as a hard prompt."""
        if not self.frozen.is_decoder_only:
            raise InvalidArgumentError(f"init: 'text' is for decoder-only models; {self.frozen.spec.display_name} "
                                       "is an encoder-decoder (use init 'random')")
        P = self.config.num_virtual_tokens
        ids = self.frozen.tokenizer(self.config.init_text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise InvalidArgumentError(f"init_text: {self.config.init_text!r} has no tokens")
        ids = torch.tensor([(ids * P)[:P]], device=self.frozen.device)  # (1, P)
        with torch.no_grad():
            cache = cache_of(self.frozen.model(input_ids=ids, use_cache=True))
        layers = layer_key_values(cache)  # per layer: (1, kv_heads, P, head_dim) twice
        kv = torch.stack([torch.stack([k[0], v[0]]) for k, v in layers])  # (T, 2, h, P, d)
        return kv.permute(3, 0, 1, 2, 4).reshape(P, -1).float().clone()  # (P, T * 2 * kv_width)

    def flat_prefix(self) -> torch.Tensor:
        """The prefix the model sees, (P, targets * 2 * kv_width): projected when reparameterised."""
        if self.config.prefix_projection:
            return self.transform(self.embedding.weight)  # (P, T * 2 * kv_width)
        return self.prefix

    def key_values(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per target, (key, value), each (kv_heads, P, head_dim) in the model's dtype."""
        t0 = self.targets[0]
        flat = self.flat_prefix().to(self.frozen.dtype)  # (P, T * 2 * kv_width)
        P = flat.shape[0]
        kv = flat.view(P, len(self.targets), 2, t0.kv_heads, t0.head_dim).permute(1, 2, 3, 0, 4)  # (T, 2, h, P, d)
        return [(kv[i, 0], kv[i, 1]) for i in range(len(self.targets))]

    def injection(self) -> Injection:
        prefixes = {t.module: kv for t, kv in zip(self.targets, self.key_values())}
        offset = 0 if self.frozen.is_encoder_decoder else self.config.num_virtual_tokens
        return Injection(prefixes=prefixes, position_offset=offset)


    @classmethod
    def training_passes(cls, job: Job) -> list[Pass]:
        """``n`` key/value slots in every attention layer: ``seq`` queries attend to ``seq + n`` keys. The prefix
        path calls SDPA itself without a per-row mask (``prefix_attention.py``): heads unrepeated."""
        T, n = job.seq, job.virtual_tokens
        return [Pass(lm_rows(job), T, T + n, logits=T, scored=T - 1, masked=False)]

    # -- PEFT (peft_io.py) ------------------------------------------------------------------------
    def to_peft(self, common: dict[str, Any]) -> tuple[Any, torch.Tensor]:
        """The projected prefix (PEFT saves the MLP's output, never the MLP; a PEFT export cannot resume
        training, our checkpoint can). Decoder-only models only: PEFT's encoder–decoder prefix covers decoder
        self-attention only, ours also encoder self-attention and cross-attention."""
        if self.frozen.is_encoder_decoder:
            raise InvalidArgumentError(
                "checkpoint_export_peft: PEFT prefixes only the decoder of an encoder-decoder; this prompt also "
                "prefixes encoder self-attention and cross-attention, which PEFT cannot represent")
        from peft import PrefixTuningConfig as PeftPrefixTuningConfig

        config = PeftPrefixTuningConfig(**common, token_dim=self.kv_width, num_layers=len(self.targets),
                                        num_attention_heads=self.targets[0].kv_heads, num_transformer_submodules=1,
                                        prefix_projection=False)
        with torch.no_grad():
            return config, self.flat_prefix()  # (P, layers * 2 * kv_width), projected

    @classmethod
    def from_peft(cls, raw: dict[str, Any], frozen: FrozenModel) -> tuple["PrefixTuning", torch.Tensor]:
        if frozen.is_encoder_decoder:
            raise InvalidArgumentError("checkpoint_import_peft: PEFT encoder-decoder prefixes (decoder only) "
                                       "are not supported; ours prefix the encoder and cross-attention too")
        method = cls(PrefixTuningConfig(num_virtual_tokens=int(raw.get("num_virtual_tokens", 0)),
                                        prefix_projection=False), frozen)
        return method, method.prefix  # (P, layers * 2 * kv_width)


METHOD = PrefixTuning
