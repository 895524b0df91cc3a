"""bench/quality/suffix_adapt.py on a few rows of both sets: MiniLM as it is, then one suffix variant trained
2 steps (each training pair with 2 mined hard negatives) with model selection on a dev slice of the training
pairs and scored on held-out queries. Checks the record, not the finding (bench/results/suffix-adapt-gated.json holds the full-size numbers), and that the
untrained gated suffix scores exactly what MiniLM does."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "quality" / "suffix_adapt.py"


def test_a_smoke_run_scores_a_dev_selected_suffix_against_minilm_on_both_sets(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_suffix_adapt", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    record = module.main(["--smoke", "--hard-negatives", "2", "--out", str(tmp_path / "r.json")])
    assert (tmp_path / "r.json").is_file() and sorted(record["sets"]) == ["debian", "pyfaq"]
    assert record["max_length"] == 64 and record["hard_negatives"] == 2
    assert record["sets"]["pyfaq"]["docs"] == 12 + 24  # held-out answers + the training answers, as distractors
    for name, result in record["sets"].items():
        assert result["queries"] == 12 and 0 < result["minilm"] <= 1, name
        (run,) = result["variants"]
        assert run["train_pairs"] == 16 and run["dev_pairs"] == 8 and run["attention"] == "gated"
        assert math.isclose(run["untuned"], result["minilm"], abs_tol=1e-6), name  # closed gates: MiniLM itself
        assert run["best_step"] in (0, 2) and 0 < run["best"] <= 1 and 0 < run["last"] <= 1
        assert math.isclose(run["vs_minilm_best"], run["best"] - result["minilm"])
