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

from ..errors import InvalidArgumentError, TooLargeError
from .prefix_attention import PrefixKV, prefix_context


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


def pack_rows(embeds: torch.Tensor, mask: torch.Tensor, rows: list[Injection | None], side: str) -> Packed:
    """Put each row's virtual tokens right before its real tokens; pad on ``side`` ("right"/"left").

    Works for left- or right-padded input: only the row's real tokens (``mask == 1``) are kept, in order.
    """
    B, L, H = embeds.shape
    real = mask.bool()  # (B, L)
    counts = real.sum(1).tolist()
    virtual = [r.embeds if r is not None and r.embeds is not None else embeds.new_zeros(0, H) for r in rows]
    lengths = [v.shape[0] + n for v, n in zip(virtual, counts)]
    total = max(lengths) if lengths else 0
    out_rows, mask_rows, starts = [], [], []
    for i in range(B):
        seq = torch.cat([virtual[i].to(embeds.dtype), embeds[i][real[i]]], dim=0)  # (V_i + n_i, H)
        pad = embeds.new_zeros(total - lengths[i], H)
        ones = mask.new_ones(lengths[i])
        zeros = mask.new_zeros(total - lengths[i])
        if side == "right":
            out_rows.append(torch.cat([seq, pad]))
            mask_rows.append(torch.cat([ones, zeros]))
            starts.append(0)
        else:
            out_rows.append(torch.cat([pad, seq]))
            mask_rows.append(torch.cat([zeros, ones]))
            starts.append(total - lengths[i])
    new_embeds = torch.stack(out_rows)  # (B, total, H)
    new_mask = torch.stack(mask_rows)  # (B, total)
    first = torch.tensor([s + v.shape[0] for s, v in zip(starts, virtual)], device=mask.device)  # (B,)
    rank = real.long().cumsum(1) - 1  # (B, L): k-th real token of its row
    index = torch.where(real, first[:, None] + rank, torch.zeros_like(rank))  # (B, L)
    offsets = torch.tensor([r.position_offset if r is not None else 0 for r in rows], device=mask.device)
    position_ids = offsets[:, None] + new_mask.cumsum(1) - 1  # (B, total)
    position_ids = position_ids.masked_fill(new_mask == 0, 1)
    return Packed(new_embeds, new_mask, index, position_ids)


def check_positions(frozen, packed: Packed, extra: int = 0, decoder_length: int = 0) -> None:
    """TooLargeError when a row (virtual tokens and ``extra`` new tokens included) would run past the
    model's position table, instead of an index error deep inside the model. Encoder–decoders with a
    learned table (BART) are checked on both sides (``decoder_length`` + ``extra`` decoder tokens);
    T5's relative positions have no table and no limit."""
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
    need = int(packed.position_ids.max()) + 1 + extra
    if need > limit:
        raise TooLargeError(f"sequence needs {need} positions (input, virtual tokens and new tokens); "
                            f"the model has {limit}: shorten the input, or lower training.max_length / max_new_tokens")


def batch_prefixes(rows: list[Injection | None], device, dtype) -> dict[Any, PrefixKV]:
    """Per attention module, the rows' prefixes padded to the longest, with a validity mask."""
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
        keys, values, valid = [], [], []
        for kv in kvs:
            n = 0 if kv is None else kv[0].shape[1]
            pad = torch.zeros(heads, longest - n, head_dim, device=device, dtype=dtype)
            k = pad if kv is None else torch.cat([kv[0].to(device, dtype), pad], dim=1)  # (heads, longest, d)
            v = pad if kv is None else torch.cat([kv[1].to(device, dtype), pad], dim=1)  # (heads, longest, d)
            keys.append(k)
            values.append(v)
            valid.append(torch.arange(longest, device=device) < n)  # (longest,)
        out[module] = PrefixKV(torch.stack(keys), torch.stack(values), torch.stack(valid))
    return out


def lm_loss(logits: torch.Tensor, labels: torch.Tensor, shift: bool) -> torch.Tensor:
    """Mean cross-entropy over ``labels != -100``; ``shift`` for causal LMs (token t predicts t+1)."""
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]  # (B, L-1, V), (B, L-1)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)


def run_lm(frozen, rows: list[Injection | None], input_ids, attention_mask, labels=None, decoder_input_ids=None,
           decoder_attention_mask=None):
    """Forward the frozen model with per-row injections; see ``LMSoftPromptMethod.forward_lm``."""
    if len(rows) != input_ids.shape[0]:
        raise InvalidArgumentError(f"run_lm: {len(rows)} row injections for a batch of {input_ids.shape[0]}")
    model = frozen.model
    embeds = frozen.input_embeddings()(input_ids)  # (B, L, H)
    packed = pack_rows(embeds, attention_mask, rows, side="right")
    decoder = decoder_input_ids if decoder_input_ids is not None else labels  # (B, T_dec) or None
    check_positions(frozen, packed, decoder_length=decoder.shape[1] if decoder is not None else 0)
    prefixes = batch_prefixes(rows, embeds.device, embeds.dtype)
    with prefix_context(prefixes):
        if frozen.is_encoder_decoder:
            return _run_encoder_decoder(model, packed, labels, decoder_input_ids, decoder_attention_mask)
        out = model(inputs_embeds=packed.embeds, attention_mask=packed.mask, position_ids=packed.position_ids,
                    use_cache=False)
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
