"""The LoRA baseline of the embedding bench: PEFT LoRA adapters in the frozen decoder, trained by the
worker's own loop and loss, so that only *what* is trained differs from suffix tuning.

``LoraEmbedding`` injects LoRA (``peft.inject_adapter_in_model``) into a frozen model's attention
projections and offers what the worker's ``embedding`` task and training loop ask of a method:
``tokenize``, ``embed``, ``parameters()`` (the LoRA matrices only), ``frozen`` and ``config`` with
``num_virtual_tokens`` (0: no soft vectors), and ``tasks`` (it declares the ``embedding`` task trains it, so
the worker's ``EmbeddingTask``, with the same InfoNCE loss, in-batch negatives, batching and data order,
accepts it).

Input and pooling: every text gets the same ``cue`` appended *as plain text* (the suffix's init text), and
the embedding is the L2-normalised final hidden state of the last token, i.e. the cue's last token. So
at step 0 LoRA computes what the untrained suffix computes (the same words after the text, pooled at
the same place): the two start from the same point and differ only in what they train (the PromptEOL
+ contrastive LoRA recipe of Jiang et al., 2023, "Scaling Sentence Embeddings with LLMs").

    lora = LoraEmbedding(frozen, LoraSettings(), cue)       # frozen: a model of its own, it is modified
    task = EmbeddingTask(lora, {"temperature": 0.05}, rows, [])
    summary = training.train(lora, task, TrainingConfig(...))
    Embedder(frozen, None, "last", True, 32).encode([t + cue for t in texts])  # the worker's base path
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import ClassVar

import torch
from peft import LoraConfig, inject_adapter_in_model
from torch import nn

from softprompt_worker.methods.suffix_tuning import backbone, pool
from softprompt_worker.models import FrozenModel


@dataclass
class LoraSettings:
    """LoRA as commonly set for 100M-1B decoders (PEFT's examples): rank 8, alpha 16, attention
    projections. No dropout: the suffix has none either, and the base model stays in eval mode."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


class LoraEmbedding(nn.Module):
    """LoRA adapters inside ``frozen.model`` (modified in place) seen as an embedding "method"."""

    name: ClassVar[str] = "lora"
    tasks: ClassVar[frozenset[str]] = frozenset({"embedding"})  # what the worker's tasks ask a method

    def __init__(self, frozen: FrozenModel, settings: LoraSettings, cue: str = ""):
        super().__init__()
        self.cue = cue
        lora = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                          target_modules=settings.target_modules)
        inject_adapter_in_model(lora, frozen.model)  # marks only the lora_ matrices trainable
        # The adapters only: train()/eval() here leave the base model in eval mode, as for the suffix.
        self.adapters = nn.ParameterList([p for n, p in frozen.model.named_parameters() if "lora_" in n])
        if not self.adapters or not all(p.requires_grad for p in self.adapters):
            raise RuntimeError(f"LoRA found no trainable {settings.target_modules} in {frozen.spec.display_name}")
        self.config = SimpleNamespace(num_virtual_tokens=0)  # the task counts no appended tokens
        object.__setattr__(self, "frozen", frozen)  # not a submodule, as in SoftPromptMethod

    def tokenize(self, texts: list[str], *, max_length: int | None = None,
                 to_device: bool = True) -> dict[str, torch.Tensor]:
        """``text + cue`` right-padded: ``input_ids`` and ``attention_mask``, both ``(batch, seq)``."""
        enc = self.frozen.tokenizer([text + self.cue for text in texts], padding=True, padding_side="right",
                                    truncation=max_length is not None, max_length=max_length, return_tensors="pt")
        device = self.frozen.device if to_device else torch.device("cpu")
        return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """L2-normalised last-token embeddings ``(B, H)`` of a ``tokenize``d batch."""
        hidden = backbone(self.frozen)(input_ids=batch["input_ids"],
                                       attention_mask=batch["attention_mask"]).last_hidden_state  # (B, T, H)
        pooled = pool(hidden, batch["attention_mask"], "last").float()  # (B, H)
        return nn.functional.normalize(pooled, dim=-1)
