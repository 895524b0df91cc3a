"""Query-likelihood scoring: how relevant a passage is to a query, read off a frozen causal LM.

UPR (Sachan et al., "Improving Passage Retrieval with Zero-Shot Question Generation", EMNLP 2022)
ranks a passage by how likely the LM finds the *query* after reading the passage and an instruction:

    score(q, p) = log p(q | p, instruction) = sum_t log p(q_t | q_<t, p, instruction)   (teacher forced)

Passage-specific prompt tuning (``methods/passage_tuning.py``) keeps this score and replaces the hard
instruction with trained vectors plus passage-conditioned vectors. Both go through this module, so the
tuned reranker and its UPR baseline differ only in the vectors they put in the two slots below.

Input layout (``Layout.order``), one row per (query, passage) pair::

    passage_first (default, UPR's order):  [BOS] [passage_prefix + passage] [V] [S] [query_prefix + query]
    prompt_first:                          [BOS] [S] [V] [passage_prefix + passage] [query_prefix + query]

``S`` is the prompt slot (the instruction's token embeddings for UPR, trained vectors for the tuned
model) and ``V`` the passage-vector slot (empty for UPR). ``V`` always sits next to ``S``: the
passage-specific vectors act as a per-passage part of the prompt. In ``passage_first`` they follow the
passage, inside the region an LM reads as passage content (placing them before ``Passage:`` made them
far less usable in our learning test: a copying LM attends to the passage region). Only the query tokens are scored. Text pieces
are tokenized separately (``add_special_tokens=False``); ``query_prefix`` (default ``" "``) is joined
to each query so BPE tokenizers see a word start. Two scores come out per pair: the summed
log-likelihood and its mean per query token. For the candidates of *one* query both rank identically
(the query tokens are the same); the mean removes the length bias when scores are compared across
queries. UPR itself uses the mean.

Efficiency: rows are **left**-padded so every query ends at the last position: the model computes
logits for the last ``max query length + 1`` positions only (``logits_to_keep``), and one
``log_softmax`` + gather reads all query tokens. The layout is assembled for the whole batch with one
``gather`` (no per-pair Python loop); passage vectors are computed once per distinct passage in a batch
and shared by every pair that uses it; the prompt is one ``(n, hidden)`` tensor expanded, not copied
per pair. ``score_pairs`` sorts pairs by length and pads per batch. A key/value cache for a shared
prompt prefix is not used: left padding puts each row's prefix at a different offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from softprompt_worker.models.device_copy import to_device
from softprompt_worker.errors import InvalidArgumentError, TooLargeError
from softprompt_worker.limits import MAX_SEQUENCE_LENGTH
from softprompt_worker.models import FrozenModel

ORDERS = ("passage_first", "prompt_first")
UPR_INSTRUCTION = " Please write a question based on this passage.\nQuestion:"


@dataclass(frozen=True)
class Layout:
    """Where the pieces of a scored row go (see the module docstring)."""

    order: str = "passage_first"
    passage_prefix: str = "Passage: "
    instruction: str = UPR_INSTRUCTION  # the hard prompt (UPR) / the soft prompt's init text
    query_prefix: str = " "
    prepend_bos: bool = True  # a BOS token first, when the tokenizer has one
    max_passage_tokens: int = 256
    max_query_tokens: int = 64

    def validate(self) -> None:
        if self.order not in ORDERS:
            raise InvalidArgumentError(f"order: {self.order!r} is not one of {', '.join(ORDERS)}")
        for field in ("max_passage_tokens", "max_query_tokens"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SEQUENCE_LENGTH:
                raise InvalidArgumentError(f"{field}: {value!r} is not an int in 1..{MAX_SEQUENCE_LENGTH}")


class Conditioner(Protocol):
    """What fills the two slots and scores with them: UPR's ``HardPrompt`` or a ``PassageTuning`` method.

    Calling it is its scoring entry point (``PassageTuning.forward``, the one its training loss calls
    too): ``score_pairs`` / ``score_candidates`` (evaluation, the ``rerank`` op) go through it, so training
    and serving share one path.
    """

    layout: Layout

    def __call__(self, batch: "PairBatch") -> "Scores":
        """Query log-likelihoods of every pair of ``batch``: ``pair_log_likelihood`` with these slots."""

    def prompt_embeddings(self) -> torch.Tensor:
        """The prompt slot ``S``: ``(n, hidden)``."""

    def passage_vectors(self, embeds: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Passage slot ``V`` from passage token embeddings ``(U, Lp, hidden)`` and lengths ``(U,)``:
        ``(vectors (U, M, hidden), counts (U,))``, or None for an empty slot."""


class HardPrompt:
    """UPR's conditioner: the instruction's token embeddings in the prompt slot, no passage vectors."""

    def __init__(self, frozen: FrozenModel, layout: Layout | None = None):
        require_causal_lm(frozen)
        self.frozen = frozen
        self.layout = layout or Layout()
        self.layout.validate()
        ids = frozen.tokenizer(self.layout.instruction, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            self._prompt = frozen.input_embeddings()(torch.tensor(ids, dtype=torch.long, device=frozen.device))

    def prompt_embeddings(self) -> torch.Tensor:
        return self._prompt  # (n, hidden)

    def passage_vectors(self, embeds, lengths):
        return None

    def __call__(self, batch: "PairBatch") -> "Scores":
        return pair_log_likelihood(self.frozen, self, batch)


def require_causal_lm(frozen: FrozenModel) -> None:
    """Query likelihood needs a decoder-only LM; InvalidArgumentError otherwise."""
    if not frozen.is_decoder_only:
        raise InvalidArgumentError(f"model: {frozen.spec.display_name} is not a decoder-only (causal) LM; "
                                   "query-likelihood reranking needs one (e.g. gpt2, llama)")


@dataclass
class Texts:
    """Tokenized texts, right-padded with 0: ``ids (n, L)`` and ``lengths (n,)``, on the CPU."""

    ids: torch.Tensor
    lengths: torch.Tensor


def tokenize(tokenizer, texts: list[str], *, prefix: str = "", max_tokens: int) -> Texts:
    """One batched tokenizer call; each text is ``prefix + text``, cut to ``max_tokens`` tokens."""
    if not texts:
        return Texts(torch.zeros(0, 1, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    encoded = tokenizer([prefix + t for t in texts], add_special_tokens=False, truncation=True,
                        max_length=max_tokens)["input_ids"]
    lengths = torch.tensor([len(ids) for ids in encoded], dtype=torch.long)  # (n,)
    ids = torch.zeros(len(encoded), max(1, int(lengths.max())), dtype=torch.long)  # (n, L)
    for i, row in enumerate(encoded):  # tokenizer output is a list of lists: one copy per text
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return Texts(ids=ids, lengths=lengths)


@dataclass
class PairBatch:
    """Pairs to score, on the model's device. Queries and passages are stored once each and paired by
    index, so a passage shared by several pairs (in-batch negatives, one passage for many queries) gets
    its passage vectors computed once."""

    query_ids: torch.Tensor  # (Q, Lq) right-padded
    query_lengths: torch.Tensor  # (Q,)
    passage_ids: torch.Tensor  # (P, Lp) right-padded
    passage_lengths: torch.Tensor  # (P,)
    pair_query: torch.Tensor  # (N,) index into queries
    pair_passage: torch.Tensor  # (N,) index into passages
    num_query_tokens: int  # sum over pairs of scored tokens, counted on the host
    num_text_tokens: int  # sum over pairs of query + passage tokens (throughput), counted on the host

    @classmethod
    def build(cls, queries: Texts, passages: Texts, pair_query, pair_passage, device) -> "PairBatch":
        """Select the queries/passages the pairs use (host tensors), trim padding to this batch, move."""
        pair_query = torch.as_tensor(pair_query, dtype=torch.long)  # (N,)
        pair_passage = torch.as_tensor(pair_passage, dtype=torch.long)  # (N,)
        q_used, q_index = torch.unique(pair_query, return_inverse=True)  # (Q,), (N,)
        p_used, p_index = torch.unique(pair_passage, return_inverse=True)  # (P,), (N,)
        q_len, p_len = queries.lengths[q_used], passages.lengths[p_used]  # (Q,), (P,)
        if bool((p_len == 0).any()):
            raise InvalidArgumentError("passages: a passage has no tokens; give non-empty passages")
        if bool((q_len == 0).any()):
            raise InvalidArgumentError("queries: a query has no tokens; give non-empty queries")
        q_ids = queries.ids[q_used, :int(q_len.max())]  # (Q, Lq)
        p_ids = passages.ids[p_used, :int(p_len.max())]  # (P, Lp)
        move = dict(device=device, non_blocking=True)
        return cls(q_ids.to(**move), q_len.to(**move), p_ids.to(**move), p_len.to(**move), q_index.to(**move),
                   p_index.to(**move), num_query_tokens=int(q_len[q_index].sum()),
                   num_text_tokens=int(q_len[q_index].sum() + p_len[p_index].sum()))


@dataclass
class Scores:
    """Per pair: summed log-likelihood of the query tokens, their count, and the per-token mean."""

    log_likelihood: torch.Tensor  # (N,)
    num_tokens: torch.Tensor  # (N,)

    @property
    def mean_log_likelihood(self) -> torch.Tensor:
        return self.log_likelihood / self.num_tokens.clamp(min=1)  # (N,)


def pair_log_likelihood(frozen: FrozenModel, conditioner: Conditioner, batch: PairBatch) -> Scores:
    """Differentiable scores of every pair in ``batch`` under the frozen LM (one forward pass)."""
    model, layout, device = frozen.model, conditioner.layout, frozen.device
    embed = frozen.input_embeddings()
    hidden = frozen.hidden_size
    N = batch.pair_query.shape[0]

    q_ids = batch.query_ids[batch.pair_query]  # (N, Lq)
    q_len = batch.query_lengths[batch.pair_query]  # (N,)
    p_ids = batch.passage_ids[batch.pair_passage]  # (N, Lp)
    p_len = batch.passage_lengths[batch.pair_passage]  # (N,)

    # Segments as (embeddings (N, L, hidden), lengths (N,)), in layout order.
    const = _constant_segments(frozen, layout, device)
    prompt = conditioner.prompt_embeddings().to(frozen.dtype)  # (n, hidden)
    S = (prompt.unsqueeze(0).expand(N, -1, -1), torch.full((N,), prompt.shape[0], device=device))
    passage_embeds = embed(batch.passage_ids)  # (P, Lp, hidden)
    V = conditioner.passage_vectors(passage_embeds, batch.passage_lengths)
    if V is not None:
        vectors, counts = V  # (P, M, hidden), (P,)
        V = (vectors.to(frozen.dtype)[batch.pair_passage], counts[batch.pair_passage])  # (N, M, hidden), (N,)
    P = (passage_embeds[batch.pair_passage], p_len)  # (N, Lp, hidden)
    Q = (embed(q_ids), q_len)  # (N, Lq, hidden)
    if layout.order == "passage_first":
        segments = [const["bos"], const["passage_prefix"], P, V, S, Q]
    else:
        segments = [const["bos"], S, V, const["passage_prefix"], P, Q]
    segments = [_expand(s, N) for s in segments if s is not None]

    limit = getattr(frozen.config, "max_position_embeddings", None) or getattr(frozen.config, "n_positions", None)
    inputs, mask = _assemble_left_padded(segments, hidden, limit)  # (N, T, hidden), (N, T)
    if limit and inputs.shape[1] > limit:
        raise TooLargeError(f"a scored row has {inputs.shape[1]} positions; {frozen.spec.display_name} has {limit}. "
                            "Lower max_passage_tokens / max_query_tokens (or use fewer passage vectors)")
    position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)  # (N, T)
    Kq = q_ids.shape[1]
    out = model(inputs_embeds=inputs, attention_mask=mask.long(), position_ids=position_ids,
                logits_to_keep=Kq + 1, use_cache=False)
    logits = out.logits[:, -(Kq + 1):-1].float()  # (N, Kq, vocab): position t predicts token t + 1

    # Query ids right-aligned to match the left-padded rows: row i's query fills the last q_len[i] slots.
    slot = torch.arange(Kq, device=device).unsqueeze(0) - (Kq - q_len).unsqueeze(1)  # (N, Kq)
    valid = slot >= 0  # (N, Kq)
    labels = q_ids.gather(1, slot.clamp(min=0))  # (N, Kq)
    token_ll = logits.log_softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)  # (N, Kq)
    total = (token_ll * valid).sum(-1)  # (N,)
    return Scores(log_likelihood=total, num_tokens=q_len)


@torch.no_grad()
def score_pairs(frozen: FrozenModel, conditioner: Conditioner, queries: Texts, passages: Texts,
                pair_query: torch.Tensor, pair_passage: torch.Tensor, *, batch_size: int = 16,
                before_batch: Callable[[int, int], None] | None = None) -> Scores:
    """Score many pairs in length-sorted batches; results come back in the order of the pairs (CPU).

    ``before_batch(done, total)`` runs before each batch (progress events; raise to stop, e.g. on
    cancellation).
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size: {batch_size!r} is not a positive int")
    pair_query = torch.as_tensor(pair_query, dtype=torch.long)  # (N,)
    pair_passage = torch.as_tensor(pair_passage, dtype=torch.long)  # (N,)
    total_len = queries.lengths[pair_query] + passages.lengths[pair_passage]  # (N,)
    order = torch.argsort(total_len, descending=True, stable=True)  # (N,): longest first, fail fast on OOM
    log_likelihood = torch.zeros(len(order))  # (N,)
    num_tokens = torch.zeros(len(order), dtype=torch.long)  # (N,)
    for start in range(0, len(order), batch_size):
        if before_batch is not None:
            before_batch(start, len(order))
        chunk = order[start:start + batch_size]  # (B,)
        batch = PairBatch.build(queries, passages, pair_query[chunk], pair_passage[chunk], frozen.device)
        scores = conditioner(batch)  # the conditioner's own scoring entry point (PassageTuning.forward)
        log_likelihood[chunk] = scores.log_likelihood.float().cpu()
        num_tokens[chunk] = scores.num_tokens.cpu()
    return Scores(log_likelihood=log_likelihood, num_tokens=num_tokens)


def _constant_segments(frozen: FrozenModel, layout: Layout, device) -> dict:
    """BOS and the passage prefix as ``(embeddings (c, hidden), c)``, or None when empty."""
    tok = frozen.tokenizer
    bos = [tok.bos_token_id] if layout.prepend_bos and tok.bos_token_id is not None else []
    prefix = tok(layout.passage_prefix, add_special_tokens=False)["input_ids"] if layout.passage_prefix else []
    out = {}
    for name, ids in (("bos", bos), ("passage_prefix", prefix)):
        out[name] = (frozen.input_embeddings()(to_device(ids, device)), len(ids)) if ids else None
    return out


def _expand(segment, n: int):
    """Broadcast a constant ``((c, hidden), c)`` segment to ``((n, c, hidden), (n,))``."""
    embeds, lengths = segment
    if embeds.dim() == 2:
        embeds = embeds.unsqueeze(0).expand(n, -1, -1)  # (n, c, hidden)
    if not torch.is_tensor(lengths):
        lengths = torch.full((n,), lengths, device=embeds.device)  # (n,)
    return embeds, lengths


def _assemble_left_padded(segments, hidden: int, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate per-row variable-length segments, dropping each segment's padding, left-padded.

    One stable sort moves every row's valid entries (in order) to the end and its padding to the front;
    one gather then reads the embeddings. Differentiable in every segment. The width is the sum of the
    segments' padded widths, a host number: no device sync. Only when that bound is over ``limit`` is the
    longest row read (one sync) and the front padding cut to it.
    """
    source = torch.cat([e for e, _ in segments], dim=1)  # (N, S, hidden), S = sum of padded widths
    valid = torch.cat([torch.arange(e.shape[1], device=e.device).unsqueeze(0) < n.unsqueeze(1)
                       for e, n in segments], dim=1)  # (N, S)
    T = source.shape[1]
    if limit and T > limit:
        T = int(sum(n for _, n in segments).max())  # longest row: the exact width, near the limit only
    index = torch.argsort(valid.to(torch.int8), dim=1, stable=True)[:, -T:]  # (N, T): padding first, then the row
    inputs = source.gather(1, index.unsqueeze(-1).expand(-1, -1, hidden))  # (N, T, hidden)
    mask = valid.gather(1, index)  # (N, T)
    return inputs, mask


def score_candidates(frozen: FrozenModel, conditioner: Conditioner, queries: list[str],
                     candidates: list[list[str]], *, batch_size: int = 16,
                     before_batch: Callable[[int, int], None] | None = None) -> list[Scores]:
    """Score each query against its own candidate passages: one ``Scores`` ``(C_i,)`` per query.

    Every distinct query and passage text is tokenized once (a passage shared by several lists too);
    all pairs of all queries go through ``score_pairs`` together, so batches mix queries and stay full.
    """
    layout = conditioner.layout
    passage_index: dict[str, int] = {}
    pair_query, pair_passage = [], []
    for qi, passages in enumerate(candidates):
        for text in passages:
            pair_query.append(qi)
            pair_passage.append(passage_index.setdefault(text, len(passage_index)))
    q = tokenize(frozen.tokenizer, queries, prefix=layout.query_prefix, max_tokens=layout.max_query_tokens)
    p = tokenize(frozen.tokenizer, list(passage_index), max_tokens=layout.max_passage_tokens)
    scores = score_pairs(frozen, conditioner, q, p, pair_query, pair_passage, batch_size=batch_size,
                         before_batch=before_batch)
    sizes = [len(c) for c in candidates]
    return [Scores(ll, n) for ll, n in zip(scores.log_likelihood.split(sizes), scores.num_tokens.split(sizes))]
