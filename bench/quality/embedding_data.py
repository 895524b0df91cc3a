"""The data of the embedding quality bench: Debian synopses (queries) against long descriptions (documents).

Every text any method sees, train or eval, is first cut to the same first ``max_tokens`` SmolLM2 tokens
(``clip``: a prefix of the original string, so no decode artefacts), so that BM25, MiniLM, the untuned
model, suffix tuning and LoRA all read exactly the same words.

Eval (``eval_set``): the queries are the synopses of ``retrieval.eval.jsonl``; query ``i``'s one relevant
document is its own long description, document ``i``. Two corpora share the document list:

- ``eval300``: the 300 positives of ``retrieval.eval``;
- ``eval768``: those plus every other distinct eval description of ``rerank.eval`` (its positives and
  BM25-hard negatives): 768 documents, the harder corpus of data/README.md's MiniLM baseline.

Train (``train_rows``): the first ``n`` rows of ``retrieval.train.jsonl`` (split by source package:
no eval text is in it), as ``{"query", "positive"}`` rows for the worker's ``embedding`` task.

Dev (``dev_set``): the last ``n`` rows of ``retrieval.train.jsonl``, never trained on, as an ``EvalSet``
(their synopses against their descriptions, corpus ``dev<n>``): where the learning rates are chosen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data" / "debian"


def read_rows(name: str, n: int | None = None) -> list[dict]:
    """The first ``n`` rows (all when ``None``) of ``data/debian/<name>``."""
    with open(DATA / name, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return rows if n is None else rows[:n]


def clip(texts: list[str], tokenizer, max_tokens: int) -> list[str]:
    """Each text cut to its first ``max_tokens`` tokens, as the prefix of the original string they cover."""
    enc = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_tokens,
                    return_offsets_mapping=True)
    return [text[:offsets[-1][1]] if offsets else text for text, offsets in zip(texts, enc["offset_mapping"])]


@dataclass
class EvalSet:
    """Queries and documents (both clipped); document ``i < len(queries)`` is query ``i``'s positive."""

    queries: list[str]
    docs: list[str]
    corpora: dict[str, int]  # corpus name -> how many leading documents it holds
    clipped_duplicates: int  # documents whose clipped text equals an earlier document's (ties in ranking)

    def appended(self, cue: str) -> "EvalSet":
        """The same set with ``cue`` appended to every query and document (the LoRA row's input)."""
        return EvalSet([q + cue for q in self.queries], [d + cue for d in self.docs], self.corpora,
                       self.clipped_duplicates)

    @property
    def query_ids(self) -> list[str]:
        return [f"q{i}" for i in range(len(self.queries))]

    @property
    def doc_ids(self) -> list[str]:
        return [f"d{i}" for i in range(len(self.docs))]

    @property
    def qrels(self) -> dict[str, dict[str, int]]:
        return {f"q{i}": {f"d{i}": 1} for i in range(len(self.queries))}


def eval_set(tokenizer, max_tokens: int, n_queries: int | None = None, hard_corpus: bool = True) -> EvalSet:
    """The retrieval eval set; ``n_queries`` takes the first rows only (the smoke run)."""
    rows = read_rows("retrieval.eval.jsonl", n_queries)
    positives = [r["positive"] for r in rows]
    if len(set(positives)) != len(positives):
        raise ValueError("retrieval.eval.jsonl: two queries share a positive; the qrels assume one each")
    docs = list(positives)
    corpora = {f"eval{len(docs)}": len(docs)}
    if hard_corpus:
        rerank = read_rows("rerank.eval.jsonl", n_queries)
        docs = list(dict.fromkeys(docs + [t for r in rerank for t in (r["positive"], *r["negatives"])]))
        corpora[f"eval{len(docs)}"] = len(docs)
    clipped = clip(docs, tokenizer, max_tokens)
    return EvalSet(queries=clip([r["query"] for r in rows], tokenizer, max_tokens), docs=clipped,
                   corpora=corpora, clipped_duplicates=len(clipped) - len(set(clipped)))


def train_rows(tokenizer, max_tokens: int, n: int, dev: int = 0) -> list[dict]:
    """The first ``n`` training pairs, clipped like the eval texts; none of the last ``dev`` (the dev slice)."""
    rows = read_rows("retrieval.train.jsonl")
    if len(rows) - dev < n:
        raise ValueError(f"retrieval.train.jsonl has {len(rows)} rows, {dev} of them the dev slice; the run needs {n}")
    rows = rows[:n]
    queries = clip([r["query"] for r in rows], tokenizer, max_tokens)
    positives = clip([r["positive"] for r in rows], tokenizer, max_tokens)
    return [{"query": q, "positive": p} for q, p in zip(queries, positives)]


def dev_set(tokenizer, max_tokens: int, n: int) -> EvalSet:
    """The last ``n`` rows of ``retrieval.train.jsonl`` as a retrieval set: synopsis ``i`` -> description ``i``."""
    rows = read_rows("retrieval.train.jsonl")[-n:]
    docs = clip([r["positive"] for r in rows], tokenizer, max_tokens)
    return EvalSet(queries=clip([r["query"] for r in rows], tokenizer, max_tokens), docs=docs,
                   corpora={f"dev{len(docs)}": len(docs)}, clipped_duplicates=len(docs) - len(set(docs)))
