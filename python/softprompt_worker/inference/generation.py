"""Generation and verbalizer classification with soft prompts, one prompt (or none) per row.

Both take ``rows``: one ``Injection`` (a loaded prompt's ``injection()``) or ``None`` per input, so one
batch may mix prompts of any method and length with unprompted rows (``methods/injection.py``). Each
row gets what it would get alone: decoder-only inputs are left-packed with each row's virtual tokens
directly before its own tokens, prefixes are masked per row, and positions follow each row's own
length.

Generation is a plain loop over the model's KV cache: the first call runs the whole (packed) input,
then one token per step. Prefix-tuning prefixes are prepended inside attention at every step, so the
cache holds only real tokens. Sampling uses one ``torch.Generator`` per row seeded with ``seed``, so a
row's sample does not depend on the other rows of the batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch

from softprompt_worker.errors import CancelledError, InvalidArgumentError
from softprompt_worker.models.kv_cache import cache_kwargs, cache_of
from softprompt_worker.fields import check_fields, check_values, option
from softprompt_worker.limits import MAX_NEW_TOKENS, MAX_SEED
from softprompt_worker.methods.injection import Injection, batch_prefixes, check_positions, pack_rows
from softprompt_worker.methods.prefix_attention import prefix_context



@dataclass
class GenerationOptions:
    """Decoding options. ``temperature``/``top_p`` apply only when ``do_sample``."""

    # The SDK sends only what the caller set: the defaults here apply (Hugging Face ``generate``'s).
    max_new_tokens: int = option(64, ge=1, le=MAX_NEW_TOKENS, message="range", sdk={"optional": True},
                                 doc="most tokens generated per row")
    do_sample: bool = option(False, sdk={"optional": True}, doc="sample instead of greedy decoding")
    temperature: float = option(1.0, gt=0, sdk={"optional": True}, doc="sampling temperature; only with do_sample")
    top_p: float = option(1.0, gt=0, le=1, message="range", sdk={"optional": True},
                          doc="nucleus sampling mass; only with do_sample")
    seed: int = option(0, ge=0, le=MAX_SEED, sdk={"optional": True}, doc="seeds each row's sampler")
    stop: list[str] = option(factory=list, items_non_empty=True, sdk={"optional": True},
                             doc="the output ends before the first stop string")

    def validate(self) -> None:
        check_fields(type(self), dataclasses.asdict(self))
        check_values(self)


DeltaFn = Callable[[int, str, list[int]], None]  # (row, new text, new token ids)


class _RowText:
    """One row's output: tokens so far, stop-string handling, and the text already streamed."""

    def __init__(self, tokenizer, stop: list[str]):
        self.tokenizer, self.stop = tokenizer, stop
        self.ids: list[int] = []
        self.text = ""
        self.sent = ""
        self.pending: list[int] = []
        self.done = False

    def add(self, token: int, eos: set[int]) -> None:
        if token in eos:
            self.done = True
            return
        self.ids.append(token)
        self.pending.append(token)
        self.text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        hits = [self.text.find(s) for s in self.stop if s in self.text]
        if hits:
            self.text, self.done = self.text[: min(hits)], True

    def delta(self, final: bool) -> tuple[str, list[int]]:
        """New text safe to stream: hold back an incomplete UTF-8 tail and a possible stop-string start."""
        safe = self.text
        if not (final or self.done):
            safe = safe.rstrip("\ufffd")
            hold = max((k for s in self.stop for k in range(1, len(s)) if safe.endswith(s[:k])), default=0)
            safe = safe[: len(safe) - hold]
        if not safe.startswith(self.sent) or len(safe) == len(self.sent):
            return "", []
        out, ids = safe[len(self.sent):], self.pending
        self.sent, self.pending = safe, []
        return out, ids


def _next_tokens(logits: torch.Tensor, options: GenerationOptions, generators) -> torch.Tensor:
    """(B, vocab) logits -> (B,) token ids: argmax, or nucleus sampling with per-row generators."""
    if not options.do_sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / options.temperature, dim=-1)  # (B, V)
    if options.top_p < 1:
        sorted_p, order = probs.sort(-1, descending=True)  # (B, V)
        outside = sorted_p.cumsum(-1) - sorted_p > options.top_p  # (B, V): mass before this token is enough
        sorted_p = sorted_p.masked_fill(outside, 0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)  # (B, V)
    return torch.stack([torch.multinomial(p, 1, generator=g)[0] for p, g in zip(probs, generators)])  # (B,)


def generate(frozen, rows: list[Injection | None], inputs: list[str], options: GenerationOptions,
             on_delta: DeltaFn | None = None, cancelled: Callable[[], bool] = lambda: False) -> list[str]:
    """Continue each input (decoder-only) or answer it (encoder–decoder); returns one text per input."""
    options.validate()
    if len(rows) != len(inputs):
        raise InvalidArgumentError(f"generate: {len(rows)} prompts for {len(inputs)} inputs")
    model, tok, device = frozen.model, frozen.tokenizer, frozen.device
    encoded = [tok(text, add_special_tokens=True)["input_ids"] for text in inputs]
    B, T = len(encoded), max(len(ids) for ids in encoded)
    ids = torch.full((B, T), tok.pad_token_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((B, T), dtype=torch.long)  # (B, T)
    for i, row in enumerate(encoded):
        ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row, dtype=torch.long), 1
    ids, mask = ids.to(device), mask.to(device)
    eos = {tok.eos_token_id} | set(_as_list(getattr(model.generation_config, "eos_token_id", None)))
    texts = [_RowText(tok, options.stop) for _ in range(B)]
    generators = [torch.Generator(device=device).manual_seed(options.seed) for _ in range(B)]

    with torch.no_grad():
        embeds = frozen.input_embeddings()(ids)  # (B, T, H)
        prefixes = batch_prefixes(rows, device, embeds.dtype)
        with prefix_context(prefixes):
            step = _decoder_steps(frozen, rows, embeds, mask, options.max_new_tokens)
            logits = next(step)  # (B, V)
            for _ in range(options.max_new_tokens):
                if cancelled():
                    raise CancelledError("generate cancelled")
                chosen = _next_tokens(logits, options, generators).tolist()  # (B,)
                for i, t in enumerate(chosen):
                    if not texts[i].done:
                        texts[i].add(t, eos)
                        _emit(on_delta, i, texts[i], final=False)
                if all(t.done for t in texts):
                    break
                feed = [t if not texts[i].done else tok.pad_token_id for i, t in enumerate(chosen)]
                logits = step.send(torch.tensor(feed, device=device))
    for i, t in enumerate(texts):
        _emit(on_delta, i, t, final=True)
    return [t.text for t in texts]


def _decoder_steps(frozen, rows, embeds, mask, max_new_tokens: int):
    """A generator: yields next-token logits (B, V), receives the chosen tokens (B,)."""
    model = frozen.model
    if frozen.is_encoder_decoder:
        packed = pack_rows(embeds, mask, rows, side="right")
        check_positions(frozen, packed, extra=max_new_tokens)
        encoder_out = model.get_encoder()(inputs_embeds=packed.embeds, attention_mask=packed.mask)
        start = model.config.decoder_start_token_id
        current = torch.full((embeds.shape[0], 1), start, dtype=torch.long, device=embeds.device)  # (B, 1)
        past = None
        while True:
            out = model(encoder_outputs=encoder_out, attention_mask=packed.mask, decoder_input_ids=current,
                        use_cache=True, **cache_kwargs(model, past))
            past = cache_of(out)
            current = (yield out.logits[:, -1])[:, None]  # (B, 1)
    packed = pack_rows(embeds, mask, rows, side="left")
    check_positions(frozen, packed, extra=max_new_tokens)
    attention, positions = packed.mask, packed.position_ids[:, -1:]  # (B, total), (B, 1)
    out = model(inputs_embeds=packed.embeds, attention_mask=attention, position_ids=packed.position_ids,
                use_cache=True)
    while True:
        chosen = yield out.logits[:, -1]  # (B,)
        attention = torch.cat([attention, attention.new_ones(attention.shape[0], 1)], dim=1)  # (B, total + t)
        positions = positions + 1  # (B, 1)
        out = model(input_ids=chosen[:, None], attention_mask=attention, position_ids=positions,
                    use_cache=True, **cache_kwargs(model, cache_of(out)))


def _emit(on_delta: DeltaFn | None, row: int, text: _RowText, final: bool) -> None:
    if on_delta is None:
        return
    delta, ids = text.delta(final)
    if delta:
        on_delta(row, delta, ids)


def _as_list(value) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def classify(frozen, rows: list[Injection | None], inputs: list[str], labels: list[str], *,
             batch_size: int = 16, max_length: int = 512) -> tuple[list[int], list[list[float]]]:
    """Rank classification: each label's summed log-likelihood after its input (as the classification
    task scores it). Returns (index of the best label per input, (inputs, labels) log-likelihoods)."""
    from softprompt_worker.methods.injection import run_lm
    from softprompt_worker.tasks.lm_batching import LMEncoder, score_targets

    if len(labels) < 1 or len(set(labels)) != len(labels):
        raise InvalidArgumentError(f"labels: need distinct label strings, got {labels!r:.120}")
    if len(rows) != len(inputs):
        raise InvalidArgumentError(f"classify: {len(rows)} prompts for {len(inputs)} inputs")
    encoder = LMEncoder(frozen, max_length)
    L = len(labels)
    scores: list[list[float]] = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            chunk = range(start, min(start + batch_size, len(inputs)))
            batch = encoder.collate([encoder.pair(inputs[i], label) for i in chunk for label in labels])
            expanded = [rows[i] for i in chunk for _ in labels]
            logits = run_lm(frozen, expanded, batch.input_ids, batch.attention_mask, labels=batch.labels,
                            right_padded=True).logits
            s = score_targets(logits, batch.labels, decoder_only=not frozen.is_encoder_decoder)
            scores.extend(s.logprob.view(-1, L).tolist())  # (chunk, L)
    predictions = [max(range(L), key=row.__getitem__) for row in scores]
    return predictions, scores
