"""bench/quality/suffix_dilution.py on a few rows: it runs on the embedded MiniLM and records, for each suffix
init, nDCG@10 with the mean over text + suffix and over the text only, against MiniLM as it is, then trains
each pooling 2 steps. Checks the record, not the finding (bench/results/suffix-dilution.json holds the 150-row numbers)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "quality" / "suffix_dilution.py"


def test_a_short_run_records_every_pooling_against_the_baseline(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_suffix_dilution", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    record = module.main(["--rows", "12", "--steps", "2", "--out", str(tmp_path / "r.json")])
    assert (tmp_path / "r.json").is_file() and record["rows"] == 12
    assert 0 < record["baseline"]["ndcg@10"] <= 1
    assert [(r["init"], r["mean_over"]) for r in record["runs"]] == [
        ("vocab", "text + suffix"), ("vocab", "text only"), ("random", "text + suffix"), ("random", "text only")]
    for run in record["runs"]:
        assert math.isclose(run["vs_baseline"], run["ndcg@10"] / record["baseline"]["ndcg@10"])
    assert [t["pooling"] for t in record["trained"]] == ["mean", "text_mean"]
    for t in record["trained"]:  # model selection: the best is never below the untuned start
        assert t["steps"] == 2 and t["best"] >= t["untuned"] and 0 < t["last"] <= 1
