"""How soft vectors reach a frozen language model, row by row.

A method says *what* it adds to one row with an ``Injection``; this module packs a batch whose rows
may carry different injections (different prompts, different lengths, or none) and runs the model:

- ``embeds`` (virtual tokens, prompt tuning): prepended to the row's real input embeddings (the
  encoder input for an encoder–decoder). Rows are re-packed so each row's virtual tokens sit directly
  before its own real tokens and the padding goes to one side; a row therefore sees exactly the
  positions and attention it would see alone. That is the PEFT left-padding pitfall avoided:
  PEFT puts the virtual tokens before the *padding* of a left-padded row.
- ``prefixes`` (prefix tuning): per attention module, key/value vectors prepended inside attention
  (``prefix_attention.prefix_context``); rows with shorter or no prefixes get masked slots.
- ``position_offset``: where the row's first real token sits (decoder-only prefix tuning uses
  ``num_virtual_tokens``, as in PEFT and in the paper, where the prefix occupies the first positions).

Logits come back aligned to the caller's original token positions (virtual positions stripped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from transformers.modeling_outputs import CausalLMOutputWithPast

from softprompt_worker.models.device_copy import to_device
from softprompt_worker.errors import InvalidArgumentError, TooLargeError
from softprompt_worker.methods.prefix_attention import PrefixKV, prefix_context


@dataclass
class Injection:
    """What one soft prompt adds to one row."""

    embeds: torch.Tensor | None = None  # (virtual, hidden): prepended to the (encoder) input embeddings
    # attention module -> (key, value), each (kv_heads, prefix_len, head_dim), prepended inside attention
    prefixes: dict[Any, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    position_offset: int = 0  # decoder-only: position id of the row's first real token


@dataclass
class Packed:
    """A batch re-packed with virtual tokens: what the model sees, and the way back."""

    embeds: torch.Tensor  # (batch, total, hidden)
    mask: torch.Tensor  # (batch, total) long, 1 = attend
    index: torch.Tensor  # (batch, seq) long: new position of each original position (pads -> 0)
    position_ids: torch.Tensor  # (batch, total) long
    # Host facts, known without reading the device: the largest virtual-token count, and whether every row
    # has that many and its real tokens start at the same new position (then ``index`` is ``first + p``).
    max_virtual: int = 0
    uniform: bool = False
    max_offset_plus_virtual: int = 0  # max over rows of position_offset + virtual tokens
    max_position: int = 0  # a bound on ``position_ids`` (padding slots included)


def pack_rows(embeds: torch.Tensor, mask: torch.Tensor, rows: list[Injection | None], side: str) -> Packed:
    """Put each row's virtual tokens right before its real tokens; pad on ``side`` ("right"/"left").

    Works for any input mask (left- or right-padded): only the row's real tokens (``mask == 1``) are kept,
    in order. No host sync: the packed width is the host bound ``max virtual + seq`` (exact when the row
    with the most virtual tokens is also a longest row, as in every single-prompt batch); extra slots are
    padding. The rows are placed with one gather from ``[virtual tokens | embeds | a zero]``.
    """
    B, L, H = embeds.shape
    device = embeds.device
    virtual = [r.embeds if r is not None and r.embeds is not None else None for r in rows]
    counts_v = [0 if v is None else v.shape[0] for v in virtual]
    Vmax = max(counts_v, default=0)
    total = Vmax + L
    uniform = len(set(counts_v)) <= 1
    if Vmax == 0:
        source_virtual = embeds.new_zeros(B, 0, H)
    elif uniform and all(v is virtual[0] for v in virtual):  # one prompt for every row: a view, no copy
        source_virtual = virtual[0].to(embeds.dtype).unsqueeze(0).expand(B, Vmax, H)  # (B, V, H)
    else:
        source_virtual = torch.stack([F.pad(v.to(embeds.dtype), (0, 0, 0, Vmax - v.shape[0])) if v is not None
                                      else embeds.new_zeros(Vmax, H) for v in virtual])  # (B, Vmax, H)
    source = torch.cat([source_virtual, embeds, embeds.new_zeros(B, 1, H)], dim=1)  # (B, Vmax + L + 1, H)

    real = mask.bool()  # (B, L)
    n = real.sum(1)  # (B,) real tokens per row
    v = to_device(counts_v, device)  # (B,)
    order = torch.argsort((~real).to(torch.int8), dim=1, stable=True)  # (B, L): real positions first, in order
    start = torch.zeros_like(n) if side == "right" else total - (v + n)  # (B,) first used slot of each row
    j = torch.arange(total, device=device)[None] - start[:, None]  # (B, total) slot within the row
    token = (j - v[:, None]).clamp(0, L - 1)  # (B, total) rank of the real token a slot holds
    pad_slot = Vmax + L
    src = torch.where(j < v[:, None], j.clamp(0, max(Vmax - 1, 0)), Vmax + order.gather(1, token))  # (B, total)
    used = (j >= 0) & (j < (v + n)[:, None])  # (B, total)
    src = torch.where(used, src, pad_slot)
    new_embeds = source.gather(1, src[..., None].expand(B, total, H))  # (B, total, H)
    new_mask = used.to(mask.dtype)  # (B, total)

    rank = real.long().cumsum(1) - 1  # (B, L): k-th real token of its row
    first = start + v  # (B,) new position of each row's first real token
    index = torch.where(real, first[:, None] + rank, torch.zeros_like(rank))  # (B, L)
    offsets_host = [r.position_offset if r is not None else 0 for r in rows]
    offsets = to_device(offsets_host, device)  # (B,)
    if side == "right":  # padding continues the row's positions: no jump that reads as a packed sequence
        position_ids = offsets[:, None] + torch.arange(total, device=device)[None]  # (B, total)
    else:
        position_ids = offsets[:, None] + new_mask.cumsum(1) - 1  # (B, total)
        position_ids = position_ids.masked_fill(new_mask == 0, 1)
    return Packed(new_embeds, new_mask, index, position_ids, max_virtual=Vmax,
                  uniform=uniform and side == "right",
                  max_offset_plus_virtual=max((o + c for o, c in zip(offsets_host, counts_v)), default=0),
                  max_position=max(offsets_host, default=0) + total - 1)


def check_positions(frozen, packed: Packed, extra: int = 0, decoder_length: int = 0) -> None:
    """TooLargeError when a row (virtual tokens and ``extra`` new tokens included) would run past the
    model's position table, instead of an index error deep inside the model. Encoder–decoders with a
    learned table (BART) are checked on both sides (``decoder_length`` + ``extra`` decoder tokens);
    T5's relative positions have no table and no limit.

    Decoder-only rows are checked against a host bound first (largest offset + virtual tokens + the
    input width); only a batch whose bound is over the limit reads the exact positions (one device sync)."""
    cfg = frozen.config
    if frozen.is_encoder_decoder:
        limit = getattr(cfg, "max_position_embeddings", None)
        sides = (("encoder input", packed.embeds.shape[1]), ("decoder sequence", decoder_length + extra))
        for side, need in sides if limit else ():
            if need > limit:
                raise TooLargeError(f"{side} needs {need} positions (tokens and virtual tokens); the model has "
                                    f"{limit}: shorten the text, or lower training.max_length / max_new_tokens")
        return
    limit = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)
    if not limit or packed.position_ids.numel() == 0:
        return
    width = packed.index.shape[1]  # input tokens per row, at most
    if packed.max_offset_plus_virtual + width + extra <= limit:
        return
    need = int(packed.position_ids.masked_fill(packed.mask == 0, 0).max()) + 1 + extra  # real slots only
    if need > limit:
        raise TooLargeError(f"sequence needs {need} positions (input, virtual tokens and new tokens); "
                            f"the model has {limit}: shorten the input, or lower training.max_length / max_new_tokens")


def batch_prefixes(rows: list[Injection | None], device, dtype, *, right_padded: bool = False) -> dict[Any, PrefixKV]:
    """Per attention module, the rows' prefixes padded to the longest, with a validity mask.

    ``right_padded``: every sequence of the forward has its padding after its real tokens (``run_lm``
    packs rows that way); with full prefixes in every row, causal attention then needs no per-row mask."""
    modules: dict[int, Any] = {}
    for row in rows:
        for module in (row.prefixes if row is not None else {}):
            modules[id(module)] = module
    out: dict[Any, PrefixKV] = {}
    for module in modules.values():
        kvs = [row.prefixes.get(module) if row is not None else None for row in rows]
        present = [kv for kv in kvs if kv is not None]
        heads, _, head_dim = present[0][0].shape
        longest = max(kv[0].shape[1] for kv in present)
        if all(kv is present[0] for kv in kvs):  # one prefix for every row (training): views, no copies
            key, value = (t.to(device, dtype).unsqueeze(0).expand(len(kvs), -1, -1, -1) for t in present[0])
            valid = torch.ones(len(kvs), longest, dtype=torch.bool, device=device)  # (B, P)
            out[module] = PrefixKV(key, value, valid, full=True, right_padded=right_padded)
            continue
        keys, values, valid_rows = [], [], []
        for kv in kvs:
            n = 0 if kv is None else kv[0].shape[1]
            pad = torch.zeros(heads, longest - n, head_dim, device=device, dtype=dtype)
            k = pad if kv is None else torch.cat([kv[0].to(device, dtype), pad], dim=1)  # (heads, longest, d)
            v = pad if kv is None else torch.cat([kv[1].to(device, dtype), pad], dim=1)  # (heads, longest, d)
            keys.append(k)
            values.append(v)
            valid_rows.append(torch.arange(longest, device=device) < n)  # (longest,)
        full = all(kv is not None and kv[0].shape[1] == longest for kv in kvs)
        out[module] = PrefixKV(torch.stack(keys), torch.stack(values), torch.stack(valid_rows), full=full,
                               right_padded=right_padded)
    return out


def lm_loss(logits: torch.Tensor, labels: torch.Tensor, shift: bool) -> torch.Tensor:
    """Mean cross-entropy over ``labels != -100``; ``shift`` for causal LMs (token t predicts t+1)."""
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]  # (B, L-1, V), (B, L-1)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)


def run_lm(frozen, rows: list[Injection | None], input_ids, attention_mask, labels=None, decoder_input_ids=None,
           decoder_attention_mask=None, right_padded: bool = False):
    """Forward the frozen model with per-row injections; see ``LMSoftPromptMethod.forward_lm``.

    ``right_padded``: the caller promises every row's real tokens come first (as ``LMEncoder.collate``
    builds them); a decoder-only batch whose rows share one virtual-token count then returns a view of the
    model's logits instead of a vocab-sized copy. Logits at padding positions are unspecified."""
    if len(rows) != input_ids.shape[0]:
        raise InvalidArgumentError(f"run_lm: {len(rows)} row injections for a batch of {input_ids.shape[0]}")
    model = frozen.model
    embeds = frozen.input_embeddings()(input_ids)  # (B, L, H)
    packed = pack_rows(embeds, attention_mask, rows, side="right")
    decoder = decoder_input_ids if decoder_input_ids is not None else labels  # (B, T_dec) or None
    check_positions(frozen, packed, decoder_length=decoder.shape[1] if decoder is not None else 0)
    prefixes = batch_prefixes(rows, embeds.device, embeds.dtype, right_padded=True)
    with prefix_context(prefixes):
        if frozen.is_encoder_decoder:
            return _run_encoder_decoder(model, packed, labels, decoder_input_ids, decoder_attention_mask)
        # No attention mask: rows are packed to the right and causal attention keeps every real token from
        # seeing the padding after it (padding positions' outputs are never read; positions are explicit and
        # continue through the padding, so transformers finds no packed sequences). The model then takes
        # SDPA's causal path, which may use the flash kernel; a padding mask rules flash out.
        positions = packed.position_ids  # (B, total)
        limit = getattr(frozen.config, "n_positions", None) or getattr(frozen.config, "max_position_embeddings", None)
        if limit and packed.max_position >= limit:  # padding past the table (rows near the limit): clamp it
            positions = packed.position_ids.clamp(max=limit - 1)
        out = model(inputs_embeds=packed.embeds, attention_mask=None, position_ids=positions, use_cache=False)
    if packed.uniform and right_padded:  # real tokens start at the same slot in every row: a view, no copy
        logits = out.logits[:, packed.max_virtual:packed.max_virtual + packed.index.shape[1]]  # (B, L, vocab)
    else:
        gather = packed.index[..., None].expand(-1, -1, out.logits.shape[-1])  # (B, L, vocab)
        logits = out.logits.gather(1, gather)  # (B, L, vocab)
    loss = lm_loss(logits, labels, shift=True) if labels is not None else None
    return CausalLMOutputWithPast(loss=loss, logits=logits)


def _run_encoder_decoder(model, packed: Packed, labels, decoder_input_ids, decoder_attention_mask):
    if decoder_input_ids is None:
        if labels is None:
            raise InvalidArgumentError("forward_lm: an encoder–decoder needs labels or decoder_input_ids")
        decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)  # (B, T)
    encoder_out = model.get_encoder()(inputs_embeds=packed.embeds, attention_mask=packed.mask)
    out = model(encoder_outputs=encoder_out, attention_mask=packed.mask, decoder_input_ids=decoder_input_ids,
                decoder_attention_mask=decoder_attention_mask, use_cache=False)
    if labels is not None:
        out.loss = lm_loss(out.logits, labels, shift=False)
    return out
