"""Evaluation shared by every variant of the prompting bench: one code path, whatever conditions the model.

A variant is ``(frozen, injection, context)``: ``injection`` is a trained soft prompt's / prefix's
``method.injection()`` (None for the bare or LoRA-adapted model), ``context`` a few-shot text put before
each input (its keys/values are computed once and reused for every row). Single forwards go through the
worker's ``run_lm`` (the same injection the worker trains and serves with); generation through the
worker's ``inference.generate``; targets are scored with the worker's ``LMEncoder`` + ``score_targets``.

- ``classify``: next-token verbalizer: the label whose first token is most likely right after the input
  (every real verbalizer is one token). One forward per row instead of the worker task's one per
  (row, label): the rank classification of ``tasks/classification.py`` would cost 5x here.
- ``generation_nll``: teacher-forced NLL of the reference. ``loss`` / ``token_accuracy`` / ``exact_match``
  are exactly ``GenerationTask.evaluate`` (synopsis + EOS; checked by the bench's test); ``nll_synopsis``
  leaves out the EOS, which an untuned model has no reason to predict.
- ``rouge_l``: greedy generations (their first non-empty line) against the reference, ROUGE-L F1 over words.
"""

from __future__ import annotations

import copy
import inspect
import math
import re

import torch
import torch.nn.functional as F

from softprompt_worker.inference.generation import GenerationOptions, generate
from softprompt_worker.methods.injection import run_lm
from softprompt_worker.tasks.lm_batching import IGNORE, LMEncoder, score_targets

BATCH = 16


class Forward:
    """Logits ``(B, T, V)`` for right-padded ``(B, T)`` token ids, under one variant's conditioning."""

    def __init__(self, frozen, injection=None, context: str = "") -> None:
        if injection is not None and context:
            raise ValueError("a variant is a soft prompt or a few-shot context, not both")
        self.frozen, self.injection = frozen, injection
        self.context_ids = frozen.tokenizer(context, add_special_tokens=True)["input_ids"] if context else []
        self._context_cache = None

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.context_ids:
            return run_lm(self.frozen, [self.injection] * ids.shape[0], ids, mask).logits  # (B, T, V)
        return self._after_context(ids, mask)

    def _after_context(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        model = self.frozen.model
        arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        if self._context_cache is None:  # the context's keys/values, once: (1, P) -> cache of length P
            context = torch.tensor([self.context_ids], device=ids.device)  # (1, P)
            out = model(input_ids=context, use_cache=True)
            self._context_cache = getattr(out, "cache", None) or out.past_key_values
        B, P = ids.shape[0], len(self.context_ids)
        cache = copy.deepcopy(self._context_cache)  # the model appends to it
        cache.batch_repeat_interleave(B)  # (B, heads, P, head_dim) per layer
        full_mask = torch.cat([mask.new_ones(B, P), mask], dim=1)  # (B, P + T)
        # Right padding: real tokens sit at positions P..P+len-1, the default after a cache of length P.
        return model(input_ids=ids, attention_mask=full_mask, use_cache=True, **{arg: cache}).logits  # (B, T, V)


@torch.no_grad()
def classify(forward: Forward, rows: list[dict], labels: list[str], *, batch_size: int = BATCH) -> dict:
    """Accuracy of the next-token verbalizer over ``labels`` on rows ``{"input", "label"}``."""
    tok = forward.frozen.tokenizer
    first = [tok(label, add_special_tokens=False)["input_ids"][0] for label in labels]
    label_ids = torch.tensor(first)  # (L,)
    correct, gold_nll, predicted = 0, 0.0, {label: 0 for label in labels}
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        ids, mask, lengths = _right_padded(tok, [r["input"] for r in chunk])
        logits = forward(ids, mask)  # (B, T, V)
        last = logits[torch.arange(len(chunk)), lengths - 1]  # (B, V) the next token after each input
        logp = F.log_softmax(last.float(), dim=-1)[:, label_ids]  # (B, L)
        gold = torch.tensor([labels.index(r["label"]) for r in chunk])  # (B,)
        best = logp.argmax(-1)  # (B,)
        correct += int((best == gold).sum())
        gold_nll -= float(logp.gather(1, gold[:, None]).sum())
        for b in best.tolist():
            predicted[labels[b]] += 1
    return {"accuracy": correct / len(rows), "gold_nll": gold_nll / len(rows), "predicted": predicted}


@torch.no_grad()
def generation_nll(forward: Forward, rows: list[dict], *, max_length: int, batch_size: int = BATCH) -> dict:
    """Teacher-forced scores of rows ``{"input", "target"}``: GenerationTask.evaluate plus ``nll_synopsis``."""
    encoder = LMEncoder(forward.frozen, max_length)
    logprob = n_tokens = n_correct = exact = logprob_text = n_text = 0.0
    for start in range(0, len(rows), batch_size):
        batch = encoder.collate([encoder.pair(r["input"], r["target"]) for r in rows[start:start + batch_size]])
        logits = forward(batch.input_ids, batch.attention_mask)  # (B, T, V)
        s = score_targets(logits, batch.labels, decoder_only=True)
        logprob, n_tokens = logprob + float(s.logprob.sum()), n_tokens + float(s.n_tokens.sum())
        n_correct, exact = n_correct + float(s.n_correct.sum()), exact + float(s.all_correct.sum())
        text_only = _without_final_eos(batch.labels, encoder.eos_id)  # (B, T)
        t = score_targets(logits, text_only, decoder_only=True)
        logprob_text, n_text = logprob_text + float(t.logprob.sum()), n_text + float(t.n_tokens.sum())
    nll_text = -logprob_text / max(n_text, 1)
    return {"loss": -logprob / max(n_tokens, 1), "token_accuracy": n_correct / max(n_tokens, 1),
            "exact_match": exact / len(rows), "nll_synopsis": nll_text, "perplexity_synopsis": math.exp(nll_text)}


def rouge_l(frozen, injection, rows: list[dict], *, context: str = "", max_new_tokens: int = 20,
            batch_size: int = 10) -> dict:
    """Mean ROUGE-L F1 of greedy continuations against ``target``. The answer is the first non-empty line,
    so a model that starts its answer on a new line after "summary:" is not scored as empty."""
    options = GenerationOptions(max_new_tokens=max_new_tokens)
    outputs: list[str] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        texts = generate(frozen, [injection] * len(chunk), [context + r["input"] for r in chunk], options)
        outputs += [next((line for line in t.split("\n") if line.strip()), "") for t in texts]
    scores = [rouge_l_f1(out, r["target"]) for out, r in zip(outputs, rows)]
    return {"rouge_l": sum(scores) / len(scores),
            "examples": [{"reference": r["target"].strip(), "generated": o.strip()} for o, r in zip(outputs[:3], rows)]}


def rouge_l_f1(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (Lin 2004, beta = 1) over lower-cased word tokens: LCS length / candidate and reference."""
    a, b = _words(candidate), _words(reference)
    if not a or not b:
        return 0.0
    prev = [0] * (len(b) + 1)  # LCS lengths of a[:i] against every prefix of b
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _right_padded(tok, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ids (B, T), mask (B, T), lengths (B,))``, tokenised as the worker's LMEncoder tokenises inputs."""
    encoded = [tok(t, add_special_tokens=True)["input_ids"] for t in texts]
    B, T = len(encoded), max(len(e) for e in encoded)
    ids = torch.full((B, T), tok.pad_token_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((B, T), dtype=torch.long)  # (B, T)
    for i, e in enumerate(encoded):
        ids[i, : len(e)], mask[i, : len(e)] = torch.tensor(e), 1
    return ids, mask, torch.tensor([len(e) for e in encoded])


def _without_final_eos(labels: torch.Tensor, eos_id: int) -> torch.Tensor:
    """``labels`` (B, T) with each row's last labelled token (the EOS LMEncoder appends) ignored."""
    out = labels.clone()  # (B, T)
    last = (labels != IGNORE).long().cumsum(-1).argmax(-1)  # (B,) index of the last labelled token
    rows = torch.arange(labels.shape[0])
    out[rows, last] = torch.where(out[rows, last] == eos_id, torch.full_like(last, IGNORE), out[rows, last])
    return out
