"""First stage of the reranking benchmark: BM25 over the eval corpus, top-k candidates per eval query.

The corpus is every distinct long description in the eval files (``data/debian/*.eval.jsonl``: the
positives and negatives of ``rerank``, the positives of ``retrieval``, the inputs of ``classify`` and
``generate``), so no text the rerankers see here was ever in a training file. Queries are the synopses
of ``retrieval.eval.jsonl`` (its first ``n`` rows; the file's order is a hash of the source package),
each with exactly one relevant description, its own. BM25 is the data set's own implementation
(``scripts/build_dataset_debian.py``, k1 1.2, b 0.75), imported, not copied.

    stage = first_stage(queries=100, top_k=20)
    stage.hit_queries()        # the queries whose positive BM25 put in the top k: the rerankers' input
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "debian"
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

from build_dataset_debian import BM25  # noqa: E402  (the data set's BM25, scripts/ is not a package)


@dataclass
class Query:
    """One eval query and its BM25 top-k: ``candidates`` are corpus indices, best first."""

    query: str
    positive: int  # corpus index of the relevant description
    candidates: list[int]

    @property
    def positive_rank(self) -> int | None:
        """1-based rank of the positive in the BM25 list, None when BM25 missed it (a miss)."""
        return self.candidates.index(self.positive) + 1 if self.positive in self.candidates else None


@dataclass
class FirstStage:
    corpus: list[str]
    queries: list[Query]
    top_k: int

    def hit_queries(self) -> list[Query]:
        return [q for q in self.queries if q.positive_rank is not None]

    def summary(self) -> dict:
        hits = len(self.hit_queries())
        return {"retriever": "BM25 (k1 1.2, b 0.75; scripts/build_dataset_debian.py)", "corpus_size": len(self.corpus),
                "corpus": "all distinct long descriptions in data/debian/*.eval.jsonl",
                "queries": len(self.queries), "query_source": "retrieval.eval.jsonl synopses, first rows",
                "top_k": self.top_k, "positive_in_top_k": hits, "misses": len(self.queries) - hits}


def eval_corpus() -> list[str]:
    """Distinct long descriptions of every eval file, in a fixed order (sorted)."""
    texts: set[str] = set()
    for path in sorted(DATA.glob("*.eval.jsonl")):
        for row in _read(path):
            texts.update(t for t in (row.get("positive"), *row.get("negatives", [])) if t)
            if "input" in row:  # classify / generate: the input is a long description
                texts.add(row["input"])
    return sorted(texts)


def first_stage(queries: int, top_k: int) -> FirstStage:
    corpus = eval_corpus()
    where = {text: i for i, text in enumerate(corpus)}
    index = BM25(corpus)
    rows = _read(DATA / "retrieval.eval.jsonl")[:queries]
    out = [Query(r["query"], where[r["positive"]], index.top(r["query"], top_k)) for r in rows]
    return FirstStage(corpus, out, top_k)


def _read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
