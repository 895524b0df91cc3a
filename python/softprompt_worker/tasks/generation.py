"""Generation: train a soft prompt so the frozen LM continues ``input`` with ``target``.

Rows: ``{"input": str, "target": str}``. The loss is the LM cross-entropy on the target tokens only
(plus EOS on decoder-only models, so the model learns to stop). Works for decoder-only and
encoder–decoder models through the method's ``forward_lm``.

Options:
    max_length (int, 512): tokens per sequence after truncation (see ``lm_batching.LMEncoder``).

Eval metrics (teacher-forced, one forward pass per eval batch):
    loss: mean cross-entropy per target token.
    token_accuracy: share of target tokens that are the model's argmax.
    exact_match: share of rows whose every target token is the argmax. Under teacher forcing that holds
        exactly when greedy decoding reproduces the target (each greedy step then sees the gold prefix),
        so this is greedy exact match at the cost of a single forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from softprompt_worker.fields import option
from softprompt_worker.methods.injection import lm_loss
from softprompt_worker.tasks.base import BaseTask, require_str
from softprompt_worker.tasks.lm_batching import LMBatch, LMEncoder, score_targets

EVAL_BATCH_SIZE = 16


@dataclass
class GenerationTaskOptions:
    """Options of task ``generation`` (``task_options``)."""

    max_length: int = option(512, gt=0, sdk={"omit": True},
                             doc="tokens per row; the train op fills it from training.max_length")


class GenerationTask(BaseTask):
    name: ClassVar[str] = "generation"
    selection_metric: ClassVar[str] = "loss"  # training.select_by "auto" (selection.py)
    options_class: ClassVar[type] = GenerationTaskOptions

    @staticmethod
    def validate_row(row: dict) -> None:
        require_str(row, "input")
        require_str(row, "target")

    def __init__(self, method, options, train_rows, eval_rows) -> None:
        super().__init__(method, options, train_rows, eval_rows)
        self.encoder = LMEncoder(method.frozen, self.options["max_length"])

    def collate(self, rows: list[dict]) -> LMBatch:
        return self.encoder.collate([self.encoder.pair(r["input"], r["target"]) for r in rows])

    def loss(self, batch: LMBatch) -> tuple[torch.Tensor, int]:
        return batch.forward(self.method).loss, batch.n_tokens

    # -- fused training (training/fused.py): the forward pass is shared, the loss is this task's ------
    def lm_batch(self, batch: LMBatch) -> LMBatch:
        return batch

    def loss_from_logits(self, batch: LMBatch, logits: torch.Tensor) -> torch.Tensor:
        """``loss(batch)``'s value, from this batch's rows of a shared forward. logits: (B, T, V)."""
        return lm_loss(logits, batch.labels, shift=self.encoder.decoder_only)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        if not self.eval_rows:
            return {}
        logprob = n_tokens = n_correct = exact = 0.0
        for _, batch in self.eval_batches(EVAL_BATCH_SIZE):
            logits = batch.forward(self.method).logits  # (B, T, V)
            s = score_targets(logits, batch.labels, decoder_only=self.encoder.decoder_only)
            logprob += float(s.logprob.sum())
            n_tokens += float(s.n_tokens.sum())
            n_correct += float(s.n_correct.sum())
            exact += float(s.all_correct.sum())
        return {"loss": -logprob / max(n_tokens, 1), "token_accuracy": n_correct / max(n_tokens, 1),
                "exact_match": exact / len(self.eval_rows)}


TASK = GenerationTask
