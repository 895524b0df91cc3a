"""P-tuning: virtual-token embeddings produced by a trainable prompt encoder (an MLP or a BiLSTM + MLP).

Liu, Zheng, Du, Ding, Qian, Yang & Tang, "GPT Understands, Too" (2021), https://arxiv.org/abs/2103.10385.
Like prompt tuning, ``num_virtual_tokens`` vectors are prepended to the input embeddings of a frozen LM
(before the encoder input of an encoder-decoder); unlike it, the vectors are not trained directly but are
the output of a small network over a trainable input table, which the paper finds optimises more stably
and lets the virtual tokens depend on each other (the LSTM). The layout follows PEFT's ``PromptEncoder``:

- ``encoder="mlp"`` (PEFT's default and recommendation): ``Linear(H, W) -> ReLU -> Linear(W, W) -> ReLU ->
  Linear(W, H)`` applied to each row of the input table.
- ``encoder="lstm"``: a bidirectional LSTM of ``encoder_num_layers`` layers over the table, then
  ``Linear(2W, 2W) -> ReLU -> Linear(2W, H)``.

The encoder is KEPT in the soft state (``embedding``, ``encoder.*``, ``head.*``) so training resumes
exactly; ``peft_io`` exports the encoded vectors as PEFT's inference-mode ``P_TUNING`` adapter.

Differences from PEFT's ``PromptEncoderConfig``:

- The input table starts from ``initial_vectors`` (``"random"``: a normal at the embedding scale, not
  ``nn.Embedding``'s N(0, 1); or ``"vocab"`` / ``"text"``), like every other method here.
- Rows are packed as prompt tuning packs them (``injection.pack_rows``): left-padded batches give the same
  result as one row at a time, and a batch may mix prompts.

Example::

    method = PTuning(PTuningConfig(num_virtual_tokens=8, encoder="mlp"), frozen)
    out = method.forward_lm(input_ids, attention_mask, labels=labels)   # out.loss, out.logits (B, L, vocab)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.fields import option
from softprompt_worker.limits import MAX_HIDDEN_SIZE, MAX_NUM_VIRTUAL_TOKENS, MAX_SEED
from softprompt_worker.models import FrozenModel
from softprompt_worker.methods.base import LMSoftPromptMethod, MethodConfig
from softprompt_worker.methods.init_vectors import initial_vectors
from softprompt_worker.methods.injection import Injection
from softprompt_worker.methods.workload import Job, Pass, lm_rows

ENCODERS = ("mlp", "lstm")
INITS = ("random", "vocab", "text")
MAX_LSTM_LAYERS = 8  # PEFT's default is 2; deeper prompt encoders have no reported use


@dataclass
class PTuningConfig(MethodConfig):
    """Options of P-tuning.

    Attributes:
        num_virtual_tokens: virtual tokens prepended (PEFT's examples use 20).
        encoder: ``"mlp"`` (default) or ``"lstm"`` (the paper's bidirectional LSTM + MLP head).
        encoder_hidden_size: the encoder's hidden width; None = the model's hidden size (PEFT's default).
        encoder_num_layers: LSTM layers (``encoder="lstm"`` only; PEFT's default 2).
        init: where the encoder's input table starts: ``"random"`` (default), ``"vocab"`` or ``"text"``.
        init_text: the text for ``init="text"``.
        seed: seeds the input table and the encoder's weights.
    """

    num_virtual_tokens: int = option(20, gt=0, le=MAX_NUM_VIRTUAL_TOKENS)
    encoder: str = option("mlp", choices=ENCODERS)
    encoder_hidden_size: int | None = option(None, gt=0, le=MAX_HIDDEN_SIZE)
    encoder_num_layers: int = option(2, gt=0, le=MAX_LSTM_LAYERS)
    init: str = option("random", choices=INITS)
    init_text: str | None = option(None, non_empty=True)
    seed: int = option(0, ge=0, le=MAX_SEED)

    def validate(self) -> None:
        self.check_init(INITS)
        if self.encoder != "lstm" and self.encoder_num_layers != 2:
            raise InvalidArgumentError("encoder_num_layers: only used when encoder is 'lstm'")


class PTuning(LMSoftPromptMethod):
    """``embedding``: (V, H) f32, the encoder's input table; ``encoder`` (LSTM only) and ``head``: the
    prompt encoder. ``prompt_vectors()`` (V, H) are what reaches the model."""

    name: ClassVar[str] = "p_tuning"
    config_class: ClassVar[type[MethodConfig]] = PTuningConfig
    tasks: ClassVar[frozenset[str]] = frozenset({"generation", "classification"})
    peft_type: ClassVar[str | None] = "P_TUNING"

    def __init__(self, config: PTuningConfig, frozen: FrozenModel):
        super().__init__(config, frozen)
        H, W = frozen.hidden_size, config.encoder_hidden_size or frozen.hidden_size
        generator = torch.Generator().manual_seed(config.seed)
        table = initial_vectors(frozen, config.num_virtual_tokens, config.init, config.init_text, generator=generator)
        self.embedding = nn.Parameter(table)  # (V, H) f32
        with torch.random.fork_rng(devices=[]):  # the layers' default inits draw from the global CPU generator
            torch.manual_seed(config.seed)
            if config.encoder == "lstm":
                self.encoder = nn.LSTM(H, W, num_layers=config.encoder_num_layers, bidirectional=True,
                                       batch_first=True)
                self.head = nn.Sequential(nn.Linear(2 * W, 2 * W), nn.ReLU(), nn.Linear(2 * W, H))
            else:
                self.head = nn.Sequential(nn.Linear(H, W), nn.ReLU(), nn.Linear(W, W), nn.ReLU(), nn.Linear(W, H))
        self.to(frozen.device)

    def prompt_vectors(self) -> torch.Tensor:
        """The encoded virtual tokens, (V, H) f32."""
        x = self.embedding  # (V, H)
        if self.config.encoder == "lstm":
            x = self.encoder(x[None])[0][0]  # (1, V, H) -> (1, V, 2W) -> (V, 2W)
        return self.head(x)  # (V, H)

    def injection(self) -> Injection:
        return Injection(embeds=self.prompt_vectors().to(self.frozen.dtype))  # (V, H)

    @classmethod
    def training_passes(cls, job: Job) -> list[Pass]:
        """Prompt tuning's passes (``n`` vectors before every row); the encoder itself runs once per step on
        ``n`` rows, which is negligible next to the model."""
        T, n = job.seq, job.virtual_tokens
        return [Pass(lm_rows(job), T + n, T + n, logits=T + n, scored=T - 1, masked=False)]

    # -- PEFT (peft_io.py) ------------------------------------------------------------------------
    def to_peft(self, common: dict[str, Any]) -> tuple[Any, torch.Tensor]:
        """PEFT's inference-mode ``P_TUNING`` adapter: its ``prompt_embeddings`` are the encoded vectors
        (PEFT then uses them as they are, without the encoder); encoder only for encoder-decoders."""
        from peft import PromptEncoderConfig

        frozen, config = self.frozen, self.config
        peft_config = PromptEncoderConfig(
            **common, token_dim=frozen.hidden_size, num_transformer_submodules=1, num_layers=frozen.num_layers,
            encoder_reparameterization_type=config.encoder.upper(),
            encoder_hidden_size=config.encoder_hidden_size or frozen.hidden_size,
            encoder_num_layers=config.encoder_num_layers)
        with torch.no_grad():
            return peft_config, self.prompt_vectors()  # (V, H)

    @classmethod
    def from_peft(cls, raw: dict[str, Any], frozen: FrozenModel):
        """A ``P_TUNING`` adapter keeps only the encoded vectors, not the encoder: it loads as the prompt-tuning
        prompt it is equivalent to (same vectors, same injection)."""
        from softprompt_worker.methods.prompt_tuning import PromptTuning

        return PromptTuning.from_peft(raw, frozen)


METHOD = PTuning
