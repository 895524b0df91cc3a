"""Prompt tuning: trainable virtual-token embeddings prepended to the input.

Lester, Al-Rfou & Constant, "The Power of Scale for Parameter-Efficient Prompt Tuning" (EMNLP 2021),
https://arxiv.org/abs/2104.08691. ``num_virtual_tokens`` vectors live in the model's input-embedding
space and are prepended to the input embeddings: before the input of a decoder-only model, before
the encoder input of an encoder–decoder. The model stays frozen.

Differences from PEFT's ``PromptTuningConfig``:

- Rows are packed so each row's virtual tokens sit right before its own real tokens
  (``injection.pack_rows``), so left-padded batches give the same result as one row at a time;
  one batch may mix rows with different prompts, or none.
- ``init="random"`` draws from a normal with the standard deviation of the embedding matrix (PEFT
  uses ``nn.Embedding``'s N(0, 1), far off the embedding scale of most models).
- ``init="checkpoint"`` starts from another prompt's vectors (prompt transfer, Vu et al., "SPoT",
  ACL 2022, https://arxiv.org/abs/2110.07904), repeated or truncated to ``num_virtual_tokens``.

Example::

    method = PromptTuning(PromptTuningConfig(num_virtual_tokens=8, init="text", init_text="Classify:"), frozen)
    out = method.forward_lm(input_ids, attention_mask, labels=labels)   # out.loss, out.logits (B, L, vocab)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.fields import option
from softprompt_worker.limits import MAX_NUM_VIRTUAL_TOKENS, MAX_SEED
from softprompt_worker.models import FrozenModel
from softprompt_worker.methods.base import LMSoftPromptMethod, MethodConfig
from softprompt_worker.methods.init_vectors import initial_vectors
from softprompt_worker.methods.injection import Injection
from softprompt_worker.methods.workload import Job, Pass, lm_rows

INITS = ("vocab", "text", "random", "checkpoint")


@dataclass
class PromptTuningConfig(MethodConfig):
    """Options of prompt tuning.

    Attributes:
        num_virtual_tokens: virtual tokens prepended (Lester et al. find 20–100 best; 20 is cheap
            and strong for large models).
        init: "vocab" (embeddings of sampled vocabulary tokens; the paper's best init, default),
            "text" (tokenise ``init_text`` and repeat/truncate it to ``num_virtual_tokens``; PEFT's TEXT),
            "random" (normal at the embedding scale) or "checkpoint" (vectors of ``init_checkpoint``).
        init_text: the text for ``init="text"``, e.g. "Classify the sentiment of this review:".
        init_checkpoint: path of a prompt-tuning checkpoint for ``init="checkpoint"``.
        seed: seeds the "vocab" and "random" inits.
    """

    num_virtual_tokens: int = option(20, gt=0, le=MAX_NUM_VIRTUAL_TOKENS)
    init: str = option("vocab", choices=INITS)
    init_text: str | None = option(None, non_empty=True)
    init_checkpoint: str | None = option(None, non_empty=True)
    seed: int = option(0, ge=0, le=MAX_SEED)

    def validate(self) -> None:
        self.check_init(INITS)
        if self.init == "checkpoint" and not self.init_checkpoint:
            raise InvalidArgumentError("init_checkpoint: required when init is 'checkpoint'")


class PromptTuning(LMSoftPromptMethod):
    """``embedding``: (num_virtual_tokens, hidden) float32, the only parameter."""

    name: ClassVar[str] = "prompt_tuning"
    config_class: ClassVar[type[MethodConfig]] = PromptTuningConfig
    tasks: ClassVar[frozenset[str]] = frozenset({"generation", "classification"})
    peft_type: ClassVar[str | None] = "PROMPT_TUNING"

    def __init__(self, config: PromptTuningConfig, frozen: FrozenModel):
        super().__init__(config, frozen)
        # A transfer source is read on first use, not here: a checkpoint of this prompt stores its own
        # vectors and must load without the source file (``load_soft_state`` cancels the transfer).
        self._pending_transfer = config.init_checkpoint if config.init == "checkpoint" else None
        if self._pending_transfer:
            vectors = torch.zeros(config.num_virtual_tokens, frozen.hidden_size)
        else:
            vectors = initial_vectors(frozen, config.num_virtual_tokens, config.init, config.init_text,
                                      generator=torch.Generator().manual_seed(config.seed))
        self.embedding = nn.Parameter(vectors.to(frozen.device))  # (V, H) f32

    def injection(self) -> Injection:
        self._apply_transfer()
        return Injection(embeds=self.embedding.to(self.frozen.dtype))  # (V, H)

    def soft_state(self) -> dict[str, torch.Tensor]:
        self._apply_transfer()
        return super().soft_state()

    def load_soft_state(self, state: dict[str, torch.Tensor]) -> None:
        super().load_soft_state(state)
        self._pending_transfer = None

    @classmethod
    def training_passes(cls, job: Job) -> list[Pass]:
        """``n`` vectors before the input: every layer sees ``seq + n`` positions, and the logits cover them
        too (sliced off afterwards). Rows are packed to the right and run without a mask under causal
        attention (``injection.run_lm``)."""
        T, n = job.seq, job.virtual_tokens
        return [Pass(lm_rows(job), T + n, T + n, logits=T + n, scored=T - 1, masked=False)]

    # -- PEFT (peft_io.py) ------------------------------------------------------------------------
    def to_peft(self, common: dict[str, Any]) -> tuple[Any, torch.Tensor]:
        """Encoder–decoder prompts export with ``num_transformer_submodules=1`` (encoder only), which is what
        this method does; PEFT's seq2seq default (2) also prompts the decoder."""
        from peft import PromptTuningConfig as PeftPromptTuningConfig

        frozen = self.frozen
        config = PeftPromptTuningConfig(**common, token_dim=frozen.hidden_size, num_transformer_submodules=1,
                                        num_layers=frozen.num_layers, prompt_tuning_init="RANDOM")
        return config, self.soft_state()["embedding"]  # (V, H)

    @classmethod
    def from_peft(cls, raw: dict[str, Any], frozen: FrozenModel) -> tuple["PromptTuning", torch.Tensor]:
        if (raw.get("num_transformer_submodules") or 1) != 1:
            raise InvalidArgumentError("checkpoint_import_peft: this adapter also prompts the decoder "
                                       "(num_transformer_submodules=2); only encoder/input prompts are supported")
        method = cls(PromptTuningConfig(num_virtual_tokens=int(raw.get("num_virtual_tokens", 0)), init="random"),
                     frozen)
        return method, method.embedding  # (V, H)

    def _apply_transfer(self) -> None:
        if self._pending_transfer:
            vectors = _repeat_to(checkpoint_vectors(self._pending_transfer, self.frozen), self.embedding.shape[0])
            with torch.no_grad():
                self.embedding.copy_(vectors)  # (V, H)
            self._pending_transfer = None


def checkpoint_vectors(path: str, frozen: FrozenModel) -> torch.Tensor:
    """The ``embedding`` of a prompt-tuning checkpoint, checked against this model's hidden size."""
    from softprompt_worker.training.checkpoints import load_checkpoint  # the checkpoint format lives with training (C1)

    loaded = load_checkpoint(path)
    method = getattr(loaded, "method", None)
    if method != PromptTuning.name:
        raise InvalidArgumentError(f"init_checkpoint: {path!r} holds a {method!r} prompt, not prompt_tuning")
    vectors = loaded.tensors["embedding"].float().cpu()  # (V_src, H_src)
    if vectors.shape[1] != frozen.hidden_size:
        raise InvalidArgumentError(
            f"init_checkpoint: hidden size {vectors.shape[1]} does not match the model's {frozen.hidden_size}")
    return vectors


def _repeat_to(x: torch.Tensor, n: int) -> torch.Tensor:
    """Repeat ``x`` along dim 0 and cut to ``n`` rows."""
    reps = -(-n // x.shape[0])
    return x.repeat(reps, *([1] * (x.dim() - 1)))[:n]


METHOD = PromptTuning
