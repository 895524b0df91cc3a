"""Suffix prompt tuning (SPT): trainable vectors appended after the text, pooled into an embedding.

Zhao et al., "Prompt Tuning Can Simply Adapt Large Language Models to Text Encoders", RepL4NLP 2025.
``k`` trainable vectors are placed right after each input's last content token, the frozen model reads
``text + suffix``, and the text embedding is the final hidden state at the last suffix position. Under
causal attention (SPT-uni, the default for decoder LMs) that position is the only one that has seen the
whole text *and* the whole suffix, so the suffix learns to "summarise" the text for retrieval.

Placement is per row: in a right-padded batch each row's suffix starts right after that row's text,
never after padding. Trailing special tokens the tokenizer adds (BERT's ``[SEP]``, T5's ``</s>``) stay
last: the suffix goes *before* them. The inputs are built with one gather, no per-row Python loop.

Models: decoder LMs (GPT-2, Llama incl. GQA), encoders (BERT) and the encoder of encoder–decoders
(T5, BART). PEFT has no suffix placement, so this module owns its injection.

    >>> method = SuffixTuning(SuffixTuningConfig(num_virtual_tokens=8), frozen)
    >>> batch = method.tokenize(["a query", "a longer passage text"])
    >>> method.embed(batch).shape                       # (2, hidden)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.models.kv_cache import cache_kwargs, cache_of
from softprompt_worker.fields import option
from softprompt_worker.limits import MAX_NUM_VIRTUAL_TOKENS, MAX_SEQUENCE_LENGTH
from softprompt_worker.models import FrozenModel
from softprompt_worker.methods.base import MethodConfig, SoftPromptMethod
from softprompt_worker.methods import suffix_gate
from softprompt_worker.methods.init_vectors import initial_vectors
from softprompt_worker.methods.workload import Job, Pass, Sizes

POOLINGS = ("last", "mean", "text_mean", "first")
ATTENTIONS = ("model", "bidirectional", "gated")
INITS = ("vocab", "random", "text")


@dataclass
class SuffixTuningConfig(MethodConfig):
    """Options of suffix tuning. All are JSON scalars or string enums.

    Args:
        num_virtual_tokens: suffix length ``k``. 16 is issue 4's default; prompt-tuning lengths of
            5–100 all work (Lester et al., 2021), longer suffixes help small models most.
        attention: ``"model"`` keeps the model's own mask: causal for decoder LMs (SPT-uni, the paper's
            main setting), bidirectional for encoders. ``"bidirectional"`` makes a decoder LM attend both
            ways over text + suffix (SPT-bi) through a custom 4D mask; encoders are bidirectional already.
            ``"gated"`` (encoders): every position reads the suffix through a per-layer, per-head gate that
            starts closed (LLaMA-Adapter's zero-init attention, ``methods/suffix_gate.py``) and the text keeps
            its own position ids, so with ``pooling="text_mean"`` or ``"first"`` the untrained method equals
            the bare encoder (within float rounding) and training opens the gates; adds ``layers x heads``
            trainable scalars (``suffix_gate``). Made for adapting a good embedder without harming it.
        pooling: ``"last"``: the final hidden state at the last suffix position (the paper's choice, and
            our default for every family: it is the one position whose input is fully trained);
            ``"mean"``: mean over every real position (text, suffix, special tokens); ``"text_mean"``: mean
            over the text's positions only (special tokens included, the suffix left out), so the suffix
            changes the embedding only through what the text attends to (a mean-pooling encoder such as
            MiniLM keeps its own pooling; bench/quality/suffix_dilution.py: an untrained 8-vector suffix
            costs MiniLM 8 nDCG@10 points under ``"mean"``, 1 under ``"text_mean"``); needs bidirectional
            attention (an encoder, or ``attention="bidirectional"``); ``"first"``: the first position
            (BERT's ``[CLS]``; under causal attention it sees only itself).
        normalize: L2-normalise embeddings (cosine similarity becomes a dot product).
        init: ``"vocab"``: embeddings of random vocabulary tokens (Lester et al., 2021); ``"random"``:
            normal with the embedding matrix's std; ``"text"``: the tokens of ``init_text``, repeated.
        init_text: the text for ``init="text"``, e.g. ``"This sentence means in one word:"``.
        max_length: most text tokens per input (special tokens included); the suffix comes on top.
            ``None``: the model's position limit minus ``k``.
    """

    num_virtual_tokens: int = option(16, gt=0, le=MAX_NUM_VIRTUAL_TOKENS)
    attention: str = option("model", choices=ATTENTIONS)
    pooling: str = option("last", choices=POOLINGS)
    normalize: bool = option(True)
    init: str = option("vocab", choices=INITS)
    init_text: str | None = option(None, non_empty=True)
    max_length: int | None = option(None, gt=0, le=MAX_SEQUENCE_LENGTH)

    def validate(self) -> None:
        self.check_init(INITS)
        if self.attention == "gated" and self.pooling not in ("text_mean", "first"):
            raise InvalidArgumentError(f"pooling: {self.pooling!r} reads the suffix positions themselves, so "
                                       "attention: 'gated' could not leave the untrained embedding unchanged; "
                                       "use 'text_mean' or 'first'")


class SuffixTuning(SoftPromptMethod):
    """``k`` trainable suffix vectors (``self.suffix``, ``(k, hidden)``, f32) on a frozen model."""

    name = "suffix_tuning"
    config_class = SuffixTuningConfig
    tasks = frozenset({"embedding"})  # PEFT has no suffix placement: no peft_type
    config: SuffixTuningConfig

    def __init__(self, config: SuffixTuningConfig, frozen: FrozenModel):
        super().__init__(config, frozen)
        if config.attention == "bidirectional" and not frozen.is_decoder_only:
            raise InvalidArgumentError("attention: 'bidirectional' applies to decoder LMs; "
                                       f"{frozen.spec.display_name} is already bidirectional, use 'model'")
        if config.attention == "gated" and (frozen.is_decoder_only or frozen.is_encoder_decoder):
            raise InvalidArgumentError(f"attention: 'gated' applies to encoders; {frozen.spec.display_name} is "
                                       "not one (a causal decoder's text never sees its suffix: use 'model')")
        if config.pooling == "text_mean" and frozen.is_decoder_only and config.attention != "bidirectional":
            raise InvalidArgumentError("pooling: 'text_mean' leaves the suffix out of the mean, so under causal "
                                       "attention (no text position sees the suffix) it would learn nothing; use "
                                       "attention: 'bidirectional', or pooling 'last' or 'mean'")
        self.trailing_specials = _trailing_special_count(frozen.tokenizer)
        self.suffix = nn.Parameter(initial_vectors(frozen, config.num_virtual_tokens, config.init,
                                                   config.init_text))  # (k, hidden)
        if config.attention == "gated":
            self._gated_modules = suffix_gate.install(backbone(frozen))
            heads = frozen.config.num_attention_heads
            self.suffix_gate = nn.Parameter(torch.zeros(len(self._gated_modules), heads))  # (layers, heads)

    # -- inputs ----------------------------------------------------------------------------------
    def max_text_length(self) -> int:
        """Most text tokens per input, so that text + suffix fits the model's positions."""
        cfg = self.frozen.config
        limit = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        room = limit - self.config.num_virtual_tokens if limit else None
        lengths = [n for n in (self.config.max_length, room) if n is not None]
        if lengths and min(lengths) < 1 + self.trailing_specials:
            raise InvalidArgumentError(f"num_virtual_tokens: {self.config.num_virtual_tokens} leaves no room for "
                                       f"text within the model's {limit} positions")
        return min(lengths) if lengths else 512

    def tokenize(self, texts: list[str], *, max_length: int | None = None,
                 to_device: bool = True) -> dict[str, torch.Tensor]:
        """Right-padded, truncated ``input_ids`` and ``attention_mask`` (both ``(batch, seq)``).

        ``max_length`` lowers the text-token limit further; ``to_device=False`` leaves them on the CPU
        (count tokens there without a device sync, then move).
        """
        device = self.frozen.device if to_device else torch.device("cpu")
        if not texts:
            empty = torch.zeros(0, 1, dtype=torch.long, device=device)  # (0, 1)
            return {"input_ids": empty, "attention_mask": empty.clone()}
        limit = min(self.max_text_length(), max_length or self.max_text_length())
        enc = self.frozen.tokenizer(list(texts), padding=True, truncation=True, max_length=limit,
                                    padding_side="right", return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(device, non_blocking=True),
                "attention_mask": enc["attention_mask"].to(device, non_blocking=True)}

    def inject(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Place the suffix after each row's text: ``(inputs_embeds, attention_mask, suffix_end)``.

        ``input_ids``/``attention_mask`` are ``(B, T)`` and right-padded. Returns embeddings
        ``(B, T + k, H)``, the 2D mask ``(B, T + k)`` and the index of each row's last suffix position
        ``(B,)``. Output position ``j`` of row ``b`` with insertion point ``p_b`` takes token ``j`` when
        ``j < p_b``, suffix vector ``j - p_b`` when ``p_b <= j < p_b + k``, token ``j - k`` after that.
        """
        B, T = input_ids.shape
        k = self.config.num_virtual_tokens
        tokens = self.frozen.input_embeddings()(input_ids)  # (B, T, H)
        H = tokens.shape[-1]
        lengths = attention_mask.sum(dim=1)  # (B,)
        insert_at = (lengths - self.trailing_specials).clamp(min=0)  # (B,)
        suffix = self.suffix.to(tokens.dtype).unsqueeze(0).expand(B, k, H)  # (B, k, H)
        pool = torch.cat([tokens, suffix], dim=1)  # (B, T + k, H): tokens, then the suffix at T..T+k-1
        j = torch.arange(T + k, device=input_ids.device).unsqueeze(0)  # (1, T + k)
        p = insert_at.unsqueeze(1)  # (B, 1)
        source = torch.where(j < p, j, torch.where(j < p + k, T + (j - p), j - k))  # (B, T + k)
        embeds = pool.gather(1, source.unsqueeze(-1).expand(B, T + k, H))  # (B, T + k, H)
        mask = (j < (lengths + k).unsqueeze(1)).to(attention_mask.dtype)  # (B, T + k)
        return embeds, mask, insert_at + k - 1

    # -- forward ---------------------------------------------------------------------------------
    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Final hidden states ``(B, T + k, H)`` of text + suffix, the 2D mask and the last suffix index."""
        embeds, mask, suffix_end = self.inject(input_ids, attention_mask)
        model_mask: torch.Tensor = mask
        extra: dict[str, Any] = {"use_cache": False} if self.frozen.is_decoder_only else {}  # no cache to build
        if self.config.attention in ("bidirectional", "gated"):
            model_mask = bidirectional_mask(mask, embeds.dtype)  # (B, 1, T + k, T + k)
        if self.config.attention == "gated":
            extra.update(self._gate_inputs(attention_mask.sum(dim=1), suffix_end, mask.shape[1]))
        out = backbone(self.frozen)(inputs_embeds=embeds, attention_mask=model_mask, **extra)
        if self.config.attention == "gated":
            extra["suffix_gate"].check_every_layer_used()
        return out.last_hidden_state, mask, suffix_end  # (B, T + k, H), (B, T + k), (B,)

    def _gate_inputs(self, lengths: torch.Tensor, suffix_end: torch.Tensor, width: int) -> dict[str, Any]:
        """``position_ids`` and the ``suffix_gate`` keyword for a gated pass over ``width`` = T + k positions.

        The text keeps the positions it has without a suffix (a trailing ``[SEP]`` too); the suffix takes
        the ``k`` positions after the text's last, so at closed gates the text's states are the encoder's.
        """
        k = self.config.num_virtual_tokens
        j = torch.arange(width, device=lengths.device).unsqueeze(0)  # (1, T + k)
        first = (suffix_end - k + 1).unsqueeze(1)  # (B, 1)
        is_suffix = (j >= first) & (j <= suffix_end.unsqueeze(1))  # (B, T + k)
        after = j > suffix_end.unsqueeze(1)  # (B, T + k): trailing specials (and padding)
        positions = torch.where(is_suffix, lengths.unsqueeze(1) + (j - first), torch.where(after, j - k, j))
        layer_of = {id(m): i for i, m in enumerate(self._gated_modules)}
        return {"position_ids": positions,  # (B, T + k)
                "suffix_gate": suffix_gate.SuffixGate(is_suffix, self.suffix_gate, layer_of)}

    def embed(self, batch: dict[str, torch.Tensor], *, pooling: str | None = None,
              normalize: bool | None = None) -> torch.Tensor:
        """Text embeddings ``(B, H)`` (f32) of a ``tokenize``d batch, pooled and optionally normalised.

        The one embedding path: training (the embedding task's loss), evaluation and the ``embed`` op all
        call it. ``pooling`` / ``normalize`` override the config's (the ``embed`` op's options); the cached
        text pass (``text_is_suffix_independent``) is taken whenever the pooling allows it.
        """
        pooling = pooling or self.config.pooling
        normalize = self.config.normalize if normalize is None else normalize
        if self.text_is_suffix_independent(pooling):
            pooled = self._last_suffix_state_over_cached_text(batch["input_ids"], batch["attention_mask"]).float()
        else:
            hidden, mask, suffix_end = self.hidden_states(batch["input_ids"], batch["attention_mask"])
            pooled = self.pool(hidden, mask, suffix_end, pooling).float()  # (B, H)
        return nn.functional.normalize(pooled, dim=-1) if normalize else pooled

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor, suffix_end: torch.Tensor,
             pooling: str | None = None) -> torch.Tensor:
        """``hidden_states``' output ``(B, T + k, H)`` pooled into ``(B, H)`` (``pooling``: default the config's)."""
        pooling = pooling or self.config.pooling
        if pooling == "text_mean":  # the suffix sits at suffix_end - k + 1 .. suffix_end of each row
            j = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)  # (1, T + k)
            first = (suffix_end - self.config.num_virtual_tokens + 1).unsqueeze(1)  # (B, 1)
            mask = mask * ((j < first) | (j > suffix_end.unsqueeze(1)))  # (B, T + k): text and specials
        return pool(hidden, mask, pooling, suffix_end)

    def text_is_suffix_independent(self, pooling: str | None = None) -> bool:
        """True for SPT-uni on a decoder LM with last-suffix pooling (``pooling``, default the config's) and
        nothing after the suffix (the paper's setting and our default): causal attention means no text
        position sees the suffix, so the text's keys/values are constants of the suffix and only the ``k``
        suffix positions need a graph."""
        return (self.frozen.is_decoder_only and self.config.attention == "model"
                and (pooling or self.config.pooling) == "last" and self.trailing_specials == 0)

    def _last_suffix_state_over_cached_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """The final hidden state ``(B, H)`` at the last suffix position, computed in two passes: the text
        ``(B, T)`` once without autograd (its key/value cache), then the suffix ``(B, k)`` with autograd,
        attending to that cache. Equal to ``hidden_states`` + ``pool(..., "last")`` up to float rounding,
        but backward covers ``k`` positions instead of ``T + k``: training is ~2x cheaper at k=16, T=64.

        Padding sits between a short row's text and its suffix here; the mask hides it and the suffix's
        ``position_ids`` continue each row's text, so every row sees exactly its inline layout."""
        B, T = input_ids.shape
        k = self.config.num_virtual_tokens
        model = backbone(self.frozen)
        with torch.no_grad():
            cache = cache_of(model(input_ids=input_ids, attention_mask=attention_mask, use_cache=True))
        lengths = attention_mask.sum(dim=1, keepdim=True)  # (B, 1)
        positions = lengths + torch.arange(k, device=input_ids.device).unsqueeze(0)  # (B, k)
        mask = torch.cat([attention_mask, attention_mask.new_ones(B, k)], dim=1)  # (B, T + k)
        dtype = self.frozen.input_embeddings().weight.dtype
        suffix = self.suffix.to(dtype).unsqueeze(0).expand(B, k, -1)  # (B, k, H)
        out = model(inputs_embeds=suffix, attention_mask=mask, position_ids=positions, use_cache=False,
                    **cache_kwargs(model, cache))
        return out.last_hidden_state[:, -1]  # (B, H)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.embed(batch)

    # -- memory planning (planner/) ----------------------------------------------------------------
    @classmethod
    def training_passes(cls, job: Job) -> list[Pass]:
        """``k`` vectors after the text, for the query, the positive and every hard negative of each row (no LM
        head). With the cached text pass (``text_is_suffix_independent``) the text runs once without autograd
        and only the ``k`` suffix positions run with it, attending to the text's cache."""
        T, k = job.seq, job.virtual_tokens
        texts = 2 * job.batch_size + job.batch_size * job.negatives
        if job.options.get("cached_text", True):
            return [Pass(texts, T, T, grad=False, masked=texts > 1), Pass(texts, k, T + k, checkpointed=False)]
        return [Pass(texts, T + k, T + k, masked=texts > 1)]

    def plan_sizes(self, seq: int, options: dict[str, Any]) -> Sizes:
        options["cached_text"] = self.text_is_suffix_independent()
        return Sizes(seq=min(seq, self.max_text_length()), virtual_tokens=self.config.num_virtual_tokens)

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """Embeddings ``(len(texts), H)`` on the CPU, in input order, computed in batches without grad."""
        return encode_in_batches(texts, batch_size, lambda chunk: self.embed(self.tokenize(chunk)))


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str, last_index: torch.Tensor | None = None):
    """Pool ``hidden`` ``(B, T, H)`` under the 2D ``mask`` ``(B, T)`` into ``(B, H)``.

    ``last``: position ``last_index`` ``(B,)`` (default: each row's last real position); ``mean``: mean over
    real positions (``text_mean`` too: the caller has taken a suffix out of ``mask``, see ``SuffixTuning.pool``);
    ``first``: position 0.
    """
    if pooling == "first":
        return hidden[:, 0]  # (B, H)
    if pooling in ("mean", "text_mean"):
        weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)  # (B, H)
    if pooling == "last":
        if last_index is None:
            last_index = mask.sum(1) - 1  # (B,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last_index]  # (B, H)
    raise InvalidArgumentError(f"pooling: {pooling!r} is not one of {', '.join(POOLINGS)}")


def bidirectional_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive 4D mask ``(B, 1, T, T)``: every query attends to every real key, none to padding.

    Additive (0 / dtype min) rather than boolean so both the eager path (``scores + mask``) and SDPA honour
    it; transformers passes a 4D mask through unchanged. dtype min, not -inf: no row is ever all-masked.
    """
    B, T = mask.shape
    blocked = torch.finfo(dtype).min
    keys = torch.where(mask.bool(), 0.0, blocked).to(dtype)  # (B, T)
    return keys[:, None, None, :].expand(B, 1, T, T)  # (B, 1, T, T)


def encode_in_batches(texts: list[str], batch_size: int, embed_chunk: Any) -> torch.Tensor:
    """Run ``embed_chunk(texts[i:i+batch_size])`` over ``texts`` in length-sorted batches (less padding)
    and return the rows ``(len(texts), H)`` on the CPU in the input order."""
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size: {batch_size} is not a positive int")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: torch.Tensor | None = None
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        chunk = embed_chunk([texts[i] for i in idx]).float().cpu()  # (chunk, H)
        if out is None:
            out = chunk.new_empty(len(texts), chunk.shape[1])  # (N, H)
        out[torch.tensor(idx)] = chunk
    return out if out is not None else torch.empty(0, 0)  # (N, H)


def backbone(frozen: FrozenModel):
    """The module that maps ``inputs_embeds`` to hidden states: no LM head (no vocab-sized logits)."""
    if frozen.is_encoder_decoder:
        return frozen.model.get_encoder()
    return frozen.model.base_model


def _trailing_special_count(tokenizer) -> int:
    """How many special tokens the tokenizer appends after the content (BERT ``[SEP]``: 1; GPT-2: 0)."""
    probe = "a b"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return len(full) - start - len(plain)
    return 0  # the template rewrites the content: assume nothing trails


METHOD = SuffixTuning
