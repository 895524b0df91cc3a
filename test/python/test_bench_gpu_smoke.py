"""The GPU benchmark's smoke mode (bench/gpu/run.sh --smoke) on the CPU, with the GPU settings: bf16 weights,
bf16 autocast on our side and Trainer ``bf16`` on PEFT's. Both sides must produce a number (a failing peer
is recorded, not raised, so only this test notices it) over the same tokens, and the script must run
without pyzmq, as on the GPU machine. Checks the record, not the speed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _smoke(script: str, out: Path) -> dict:
    """Run ``bench/gpu/<script> --smoke --out <out>`` on one thread; its record."""
    proc = subprocess.run([os.sys.executable, str(ROOT / "bench/gpu" / script), "--smoke", "--out", str(out)],
                          cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_smoke_run_gives_both_sides_a_number_over_the_same_tokens(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHON": str(Path(os.sys.executable)), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(ROOT / "bench/gpu/run.sh"), "--smoke", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["smoke"] is True and record["device"] == "cpu"
    assert [r["method"] for r in record["runs"]] == ["prompt_tuning", "prefix_tuning"]
    for run in record["runs"]:
        assert run["job"]["dtype"] == run["job"]["model_dtype"] == "bf16", run["job"]
        ours, peer = run["samples"]["ours"], run["samples"]["peft_trainer"]
        assert all("error" not in s for s in ours + peer), (ours, peer)
        assert {s["tokens"] for s in ours} == {s["tokens"] for s in peer}, (ours, peer)  # no look-ahead batch
        assert run["ratio"] > 0


def test_gpu_checks_smoke_trains_and_serves_every_method(tmp_path: Path) -> None:
    """The CPU matrix with GPU precision: every method x task x family case trains with bf16 weights under bf16
    autocast (issue 19), its loss falls, the frozen weights stay bit-identical, and its serving path runs."""
    record = _smoke("checks.py", tmp_path / "checks.json")
    assert len(record["methods"]) == 9
    for case, run in record["methods"].items():
        assert "error" not in run, (case, run)
        assert run["dtype"] == "bf16" and run["weights"] == "bfloat16", (case, run)
        assert run["finite"] and run["falls"] and run["frozen_bit_identical"], (case, run)
    assert {"syncs", "flash", "memory"} <= set(record)  # CUDA-only checks say they were skipped


def test_gpu_sizes_smoke_runs_bf16_and_nf4_with_and_without_checkpointing(tmp_path: Path) -> None:
    runs = _smoke("sizes.py", tmp_path / "sizes.json")["runs"]
    assert [(r["quantization"], r["gradient_checkpointing"]) for r in runs] == [
        ("bf16", False), ("bf16", True), ("nf4", False), ("nf4", True)]
    assert all("error" not in r and r["tokens_per_s"] > 0 for r in runs), runs
