"""Classification by verbalizers: the soft prompt makes the frozen LM say the right label's word.

Rows: ``{"input": str, "label": str}``, where ``label`` is one of the task's ``labels`` (the verbalizer
strings the model should produce, e.g. ``["positive", "negative"]``). Prediction scores every
verbalizer by its log-likelihood after the input (summed over its tokens, EOS included on decoder-only
models so a verbalizer that is a prefix of another is not favoured) and picks the highest: rank
classification, as in Lester et al. (2021) who treat classification as text-to-text.

Options:
    labels (list[str], required): the verbalizers, at least two, distinct.
    loss ("lm" | "ranking", "lm"): "lm" trains the gold verbalizer's tokens with the LM loss (Lester et
        al.; one sequence per row). "ranking" is the cross-entropy over the verbalizers' summed
        log-likelihoods, i.e. the decision itself (one sequence per row *and* label: len(labels)× cost).
    max_length (int, 512): tokens per sequence after truncation.

Eval metrics: accuracy (rank classification), loss (LM loss per gold-verbalizer token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.fields import option
from softprompt_worker.methods.injection import lm_loss
from softprompt_worker.tasks.base import BaseTask, require_str
from softprompt_worker.tasks.lm_batching import LMBatch, LMEncoder, score_targets

EVAL_SEQUENCES = 32  # sequences per eval forward pass (rows × labels)
LOSSES = ("lm", "ranking")


@dataclass
class ClassificationBatch:
    lm: LMBatch  # (B, T) gold pairs for "lm"; (B * L, T) every (row, label) pair for "ranking"
    gold: torch.Tensor  # (B,) index of the gold label


@dataclass
class ClassificationTaskOptions:
    """Options of task ``classification`` (``task_options``); the labels must also be distinct."""

    labels: list[str] = option(min_items=2, items_non_empty=True, errors={"min_items": "expected at least two labels"},
                               doc="the verbalizers, at least two, distinct")
    loss: str = option("lm", choices=LOSSES, doc="'lm' (LM loss on the gold label's tokens; Lester et al.) or "
                                                 "'ranking' (cross-entropy over the labels' log-likelihoods)")
    max_length: int = option(512, gt=0, sdk={"omit": True},
                             doc="tokens per row; the train op fills it from training.max_length")


class ClassificationTask(BaseTask):
    name: ClassVar[str] = "classification"
    selection_metric: ClassVar[str] = "accuracy"  # training.select_by "auto" (selection.py)
    options_class: ClassVar[type] = ClassificationTaskOptions

    @staticmethod
    def validate_row(row: dict) -> None:
        require_str(row, "input")
        require_str(row, "label")

    @classmethod
    def row_validator(cls, options: dict):
        """`validate_row` plus: the label is one of ``options["labels"]``. Used while the data is read, so
        a row with an unknown label is a bad row like any other: reported at ``file:line`` and skipped
        with ``on_bad_row: "skip"``. (Labels that are themselves invalid are reported by ``__init__``.)"""
        labels = options.get("labels")
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            return cls.validate_row
        allowed = frozenset(labels)

        def validate(row: dict) -> None:
            cls.validate_row(row)
            if row["label"] not in allowed:
                raise InvalidArgumentError(f"label {row['label']!r:.40} is not one of task_options.labels {labels!r:.80}")

        return validate

    def __init__(self, method, options, train_rows, eval_rows) -> None:
        super().__init__(method, options, train_rows, eval_rows)
        labels = self.options["labels"]
        if len(set(labels)) != len(labels):
            raise InvalidArgumentError(f"task_options.labels: verbalizers must be distinct, got {labels!r:.80}")
        self.labels: list[str] = labels
        self.index = {label: i for i, label in enumerate(labels)}
        for split, rows in (("train", self.train_rows), ("eval", self.eval_rows)):
            for i, row in enumerate(rows):
                if row["label"] not in self.index:
                    raise InvalidArgumentError(
                        f"data.{split} row {i}: label {row['label']!r:.40} is not one of task_options.labels {labels!r:.80}")
        self.encoder = LMEncoder(method.frozen, self.options["max_length"])

    def collate(self, rows: list[dict], *, all_labels: bool | None = None) -> ClassificationBatch:
        all_labels = self.options["loss"] == "ranking" if all_labels is None else all_labels
        gold = torch.tensor([self.index[r["label"]] for r in rows]).to(self.encoder.frozen.device,
                                                                     non_blocking=True)  # (B,)
        if all_labels:
            pairs = [self.encoder.pair(r["input"], label) for r in rows for label in self.labels]
        else:
            pairs = [self.encoder.pair(r["input"], r["label"]) for r in rows]
        return ClassificationBatch(self.encoder.collate(pairs), gold)

    def loss(self, batch: ClassificationBatch) -> tuple[torch.Tensor, int]:
        out = batch.lm.forward(self.method)
        if self.options["loss"] == "lm":
            return out.loss, batch.lm.n_tokens
        scores = self._label_scores(out.logits, batch)  # (B, L)
        return F.cross_entropy(scores, batch.gold), batch.lm.n_tokens

    # -- fused training (training/fused.py): the forward pass is shared, the loss is this task's ------
    def lm_batch(self, batch: ClassificationBatch) -> LMBatch:
        return batch.lm

    def loss_from_logits(self, batch: ClassificationBatch, logits: torch.Tensor) -> torch.Tensor:
        """``loss(batch)``'s value, from this batch's rows of a shared forward. logits: (B, T, V)."""
        if self.options["loss"] == "lm":
            return lm_loss(logits, batch.lm.labels, shift=self.encoder.decoder_only)
        return F.cross_entropy(self._label_scores(logits, batch), batch.gold)

    def _label_scores(self, logits: torch.Tensor, batch: ClassificationBatch) -> torch.Tensor:
        s = score_targets(logits, batch.lm.labels, decoder_only=self.encoder.decoder_only)
        return s.logprob.view(-1, len(self.labels))  # (B, L) summed log-likelihood per verbalizer

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        if not self.eval_rows:
            return {}
        L = len(self.labels)
        rows_per_pass = max(1, EVAL_SEQUENCES // L)
        correct, gold_logprob, gold_tokens = 0, 0.0, 0.0
        for start in range(0, len(self.eval_rows), rows_per_pass):
            rows = self.eval_rows[start:start + rows_per_pass]
            batch = self.collate(rows, all_labels=True)
            logits = batch.lm.forward(self.method).logits  # (B * L, T, V)
            s = score_targets(logits, batch.lm.labels, decoder_only=self.encoder.decoder_only)
            scores = s.logprob.view(-1, L)  # (B, L)
            correct += int((scores.argmax(-1) == batch.gold).sum())
            gold_logprob += float(scores.gather(1, batch.gold[:, None]).sum())
            gold_tokens += float(s.n_tokens.view(-1, L).gather(1, batch.gold[:, None]).sum())
        return {"accuracy": correct / len(self.eval_rows), "loss": -gold_logprob / max(gold_tokens, 1)}

    def predict(self, inputs: list[str]) -> list[int]:
        """Index of the best-scoring verbalizer for each input (used by tests and inference helpers)."""
        rows = [{"input": x, "label": self.labels[0]} for x in inputs]
        with torch.no_grad():
            batch = self.collate(rows, all_labels=True)
            return self._label_scores(batch.lm.forward(self.method).logits, batch).argmax(-1).tolist()


TASK = ClassificationTask
