"""Turning (input, target) text pairs into ``forward_lm`` batches, and scoring targets by likelihood.

Shared by the generation and classification tasks, for both model shapes:

- Decoder-only: ``input_ids = input tokens + target tokens + EOS``, right-padded; ``labels`` are -100 on
  the input and padding, so the loss covers the target (and the EOS that ends it) only.
- Encoder–decoder: the input goes to the encoder; ``labels`` are the tokenised target (with the
  tokenizer's own end-of-sequence template); the decoder input is ``labels`` shifted right (by the model).

Token counts are computed on the CPU while collating, so the training loop never syncs for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from softprompt_worker.errors import InvalidArgumentError

IGNORE = -100


@dataclass
class LMBatch:
    """A collated batch on the method's device. Shapes: ``(B, T)``; enc–dec ``labels`` are ``(B, T_dec)``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    n_tokens: int  # real (non-pad) tokens in the batch, encoder + decoder

    def forward(self, method):
        return method.forward_lm(self.input_ids, self.attention_mask, labels=self.labels, right_padded=True)


class LMEncoder:
    """Tokenises pairs for one frozen model and collates them into ``LMBatch``es.

    ``max_length`` bounds each sequence. Decoder-only rows keep the whole target when they can and
    drop input tokens from the left (the end of the input, next to the target, matters most);
    encoder–decoder inputs and targets are each cut on the right.
    """

    def __init__(self, frozen, max_length: int) -> None:
        self.frozen = frozen
        self.tokenizer = frozen.tokenizer
        self.max_length = int(max_length)
        self.decoder_only = not frozen.is_encoder_decoder
        if self.decoder_only and self.max_length < 2:
            raise InvalidArgumentError(f"training.max_length: a decoder-only model needs at least 2 tokens per row "
                                       f"(one to read, one to predict), got {self.max_length}")
        self.pad_id = self.tokenizer.pad_token_id
        self.eos_id = self.tokenizer.eos_token_id

    def encode(self, text: str, *, special: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def pair(self, source: str, target: str) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)`` for one row (decoder-only: aligned; enc–dec: encoder ids, target ids)."""
        if self.decoder_only:
            prompt = self.encode(source, special=True)
            answer = (self.encode(target, special=False) + [self.eos_id])[: self.max_length - 1]
            prompt = prompt[-(self.max_length - len(answer)):]
            return prompt + answer, [IGNORE] * len(prompt) + answer
        return (self.encode(source, special=True)[: self.max_length],
                self.encode(target, special=True)[: self.max_length])

    def collate(self, pairs: list[tuple[list[int], list[int]]], device=None) -> LMBatch:
        """Pad ``pairs`` into one batch on ``device`` (default: the model's)."""
        B = len(pairs)
        T = max(len(ids) for ids, _ in pairs)
        input_ids = torch.full((B, T), self.pad_id, dtype=torch.long)  # (B, T)
        mask = torch.zeros((B, T), dtype=torch.long)  # (B, T)
        T_lab = T if self.decoder_only else max(len(lab) for _, lab in pairs)
        labels = torch.full((B, T_lab), IGNORE, dtype=torch.long)  # (B, T) or (B, T_dec)
        n_tokens = 0
        for i, (ids, lab) in enumerate(pairs):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            mask[i, : len(ids)] = 1
            labels[i, : len(lab)] = torch.tensor(lab)
            n_tokens += len(ids) + (0 if self.decoder_only else len(lab))
        device = self.frozen.device if device is None else device
        move = dict(device=device, non_blocking=True)  # no host wait: the loop collates while the device works
        return LMBatch(input_ids.to(**move), mask.to(**move), labels.to(**move), n_tokens)


@dataclass
class TargetScores:
    """Per-row results of teacher-forced scoring. All ``(B,)``."""

    logprob: torch.Tensor  # sum of log p(target token) over the target
    n_tokens: torch.Tensor  # target tokens scored
    all_correct: torch.Tensor  # every target token is the argmax: greedy decoding reproduces the target
    n_correct: torch.Tensor  # target tokens that are the argmax


def score_targets(logits: torch.Tensor, labels: torch.Tensor, *, decoder_only: bool) -> TargetScores:
    """Teacher-forced log-likelihood of each row's labelled tokens (``labels != -100``).

    Args:
        logits: (B, T, V) from ``forward_lm`` (aligned to the original positions).
        labels: (B, T) as collated (decoder-only: aligned with the input, shifted here).
    """
    if decoder_only:
        logits, labels = logits[:, :-1], labels[:, 1:]  # (B, T-1, V), (B, T-1): token t predicts t+1
    valid = labels != IGNORE  # (B, T')
    B, T, V = logits.shape
    # One f32 log-softmax inside cross_entropy, read at the labels (ignored positions give 0): not a
    # separate f32 copy, log-softmax and gather of the (B, T', vocab) logits.
    logp = -F.cross_entropy(logits.reshape(B * T, V).float(), labels.reshape(B * T), ignore_index=IGNORE,
                            reduction="none").view(B, T)  # (B, T')
    correct = (logits.argmax(-1) == labels) & valid  # (B, T')
    return TargetScores(logprob=(logp * valid).sum(-1), n_tokens=valid.sum(-1), n_correct=correct.sum(-1),
                        all_correct=(correct | ~valid).all(-1))
