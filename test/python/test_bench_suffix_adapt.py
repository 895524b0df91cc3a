"""bench/quality/suffix_adapt.py on a few rows of both sets: MiniLM as it is, then one suffix variant trained
2 steps (each training pair with 2 mined hard negatives) with model selection on a dev slice of the training
pairs and scored on held-out queries. Checks the record, not the finding (bench/results/suffix-adapt-gated.json holds the full-size numbers), and that the
untrained gated suffix scores exactly what MiniLM does."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "quality" / "suffix_adapt.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_suffix_adapt", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_smoke_run_scores_a_dev_selected_suffix_against_minilm_on_both_sets(tmp_path):
    module = load_bench()
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


def test_cross_validation_keeps_step_0_unless_a_later_step_beats_it_on_average():
    module = load_bench()
    flat = {0.01: [{0: 0.9, 10: 0.9}, {0: 0.8, 10: 0.8}], 0.03: [{0: 0.9, 10: 0.95}, {0: 0.8, 10: 0.7}]}
    lr, step, mean = module.choose_by_folds(flat)
    assert (lr, step) == (0.01, 0) and math.isclose(mean[0.03][10], 0.825)  # 0.825 < 0.85: step 0 kept
    better = {0.01: [{0: 0.9, 10: 0.91, 20: 0.91}, {0: 0.8, 10: 0.81, 20: 0.81}], 0.03: [{0: 0.9, 10: 0.91, 20: 0.9}, {0: 0.8, 10: 0.81, 20: 0.8}]}
    assert module.choose_by_folds(better)[:2] == (0.01, 10)  # ties: the earlier step, then the earlier lr


def test_a_cross_validated_smoke_run_records_every_fold_and_the_choice(tmp_path):
    record = load_bench().main(["--smoke", "--sets", "pyfaq", "--cv", "2", "--out", str(tmp_path / "r.json")])
    result = record["sets"]["pyfaq"]
    assert record["cv"] == 2 and result["variants"] == []  # the folds replace the dev-slice variants
    cv = result["cv"]
    assert (cv["folds"], cv["fold_pairs"], cv["train_pairs"]) == (2, 12, 24)
    assert cv["dev_mean"]["0.003"].keys() == {"0", "2"} and cv["chosen_lr"] == 0.003 and cv["chosen_step"] in (0, 2)
    assert math.isclose(cv["chosen_dev"], cv["dev_mean"]["0.003"][str(cv["chosen_step"])])
    assert 0 < cv["held_out"] <= 1 and math.isclose(cv["vs_minilm"], cv["held_out"] - result["minilm"])
    if cv["chosen_step"] == 0:  # nothing beat the untrained suffix on the folds: MiniLM itself
        assert cv["held_out"] == result["minilm"]


def test_the_query_side_variant_selects_on_the_same_dev_ranking_as_the_suffix_on_both_sides(tmp_path):
    """``--documents base`` re-implements the dev evaluation (documents by MiniLM as it is); at step 0 the gates
    are shut, so both variants are MiniLM and must score every fold's dev questions alike."""
    module = load_bench()
    runs = {side: module.main(["--smoke", "--sets", "pyfaq", "--cv", "2", "--documents", side,
                               "--out", str(tmp_path / f"{side}.json")]) for side in ("suffix", "base")}
    assert runs["base"]["documents"] == "base"
    both, query_side = (runs[side]["sets"]["pyfaq"]["cv"] for side in ("suffix", "base"))
    assert math.isclose(query_side["step0_dev"], both["step0_dev"], abs_tol=1e-6)
    assert 0 < query_side["held_out"] <= 1


def test_the_query_side_loss_reads_the_documents_without_the_suffix():
    """Shut gates: the suffix is MiniLM, so the query-side loss equals the usual one (its document embedding is
    MiniLM's); open gates: the suffix changes the documents only in the usual loss, so the two part."""
    import argparse

    import torch
    from softprompt_worker.models import ModelSpec, load_frozen_model

    module = load_bench()
    frozen = load_frozen_model(ModelSpec.from_dict({"embedded": "minilm", "device": "cpu"}))
    args = argparse.Namespace(hard_negatives=0, dev_distractors=False)
    losses = {}
    for side in ("suffix", "base"):
        data = {**module.load_set("pyfaq", 4, 8), "max_length": 64, "documents": side}
        method, task = module.suffix_task(frozen, data, ("gated", "text_mean", "random"), data["train"][:6],
                                          data["train"][6:], args)
        batch = task.collate(task.train_triples[:4])
        with torch.no_grad():
            shut = float(task.loss(batch)[0])
            method.suffix_gate.fill_(1.0)
            losses[side] = (shut, float(task.loss(batch)[0]))
    assert math.isclose(losses["base"][0], losses["suffix"][0], rel_tol=1e-4)
    assert abs(losses["base"][1] - losses["suffix"][1]) > 1e-3
