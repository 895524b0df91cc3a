"""A run directory belongs to one job: a used one is refused unless resumed or overwritten, and two
concurrent jobs in one run directory cannot both write it (runs.RunDir.lock)."""

from __future__ import annotations

import threading

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.ops import load_op_modules
from softprompt_worker.serving.handlers import OpContext, Request, WorkerState, get_op
from softprompt_worker.training.runs import RunDir

torch.set_num_threads(1)
assert not load_op_modules(["softprompt_worker.ops.train"])

ROWS = [{"input": f"{w}=", "target": w[::-1]} for w in ("abc", "hello", "xy", "kite", "moon", "stone")]


def job(run_dir, **over):
    body = {"model": {"tiny": "gpt2", "device": "cpu"}, "method": "prompt_tuning",
            "method_config": {"num_virtual_tokens": 2}, "task": "generation", "data": {"train": {"rows": ROWS}},
            "training": {"steps": 2, "batch_size": 2, "checkpoint_every": 2, "log_every": 1}, "run_dir": str(run_dir)}
    return {**body, **over}


def train(state, body, emit=lambda *a: None, cancel=None):
    ctx = OpContext(1, "train", state, emit, cancel or threading.Event())
    return get_op("train").handler(Request(1, "train", body), ctx).body


def test_a_used_run_dir_is_refused_unless_resumed_or_overwritten(tmp_path):
    state, run = WorkerState(), tmp_path / "run"
    first = train(state, job(run))
    with pytest.raises(InvalidArgumentError, match="already holds 1 checkpoint.*resumeFrom.*overwrite: true"):
        train(state, job(run))
    assert (run / "checkpoints" / "step-00000002.pb").exists()  # untouched
    resumed = train(state, job(run, resume_from=first["checkpoint"], training={"steps": 4, "batch_size": 2,
                                                                                "checkpoint_every": 2}))
    assert resumed["summary"]["steps"] == 4
    again = train(state, job(run, overwrite=True))
    assert again["status"] == "completed"
    assert sorted(p.name for p in (run / "checkpoints").glob("*.pb")) == ["step-00000002.pb"]  # the old ones went
    with pytest.raises(InvalidArgumentError, match="overwrite: expected a boolean"):
        train(state, job(tmp_path / "other", overwrite="yes"))


def test_a_second_concurrent_job_in_one_run_dir_is_refused(tmp_path):
    state, run = WorkerState(), tmp_path / "run"
    started, release = threading.Event(), threading.Event()

    def emit(_id, _op, event, _tensors):  # hold the first job inside its training loop
        if event.get("event") == "started":
            started.set()
            release.wait(30)

    result: dict = {}
    first = threading.Thread(target=lambda: result.setdefault("first", train(state, job(run), emit)))
    first.start()
    try:
        assert started.wait(60)
        with pytest.raises(InvalidArgumentError, match="in use by another training job"):
            train(WorkerState(), job(run, overwrite=True))
    finally:
        release.set()
        first.join(60)
    assert result["first"]["status"] == "completed"
    train(state, job(run, overwrite=True))  # the lock went with the first job


def test_the_lock_excludes_another_process(tmp_path):
    import subprocess
    import sys

    run = RunDir(str(tmp_path / "run"))
    run.lock()
    try:
        code = ("import sys; sys.path.insert(0, sys.argv[2]); from softprompt_worker.training.runs import RunDir\n"
                "from softprompt_worker.errors import InvalidArgumentError\n"
                "try:\n    RunDir(sys.argv[1]).lock()\nexcept InvalidArgumentError:\n    sys.exit(3)\n")
        import softprompt_worker
        from pathlib import Path

        src = str(Path(softprompt_worker.__file__).parents[1])
        assert subprocess.run([sys.executable, "-c", code, str(tmp_path / "run"), src]).returncode == 3
    finally:
        run.unlock()
    again = RunDir(str(tmp_path / "run"))
    again.lock()
    again.unlock()


def test_an_unknown_label_is_a_bad_row_at_file_line_and_skip_skips_it(tmp_path):
    # (issue 14 item 8: it used to stop the job with a 0-based row index whatever on_bad_row said)
    rows = [{"input": f"text {i}", "label": "pos" if i % 2 else "neg"} for i in range(6)]
    rows.insert(3, {"input": "odd one", "label": "maybe"})
    data = tmp_path / "train.jsonl"
    data.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    body = job(tmp_path / "run", method="prompt_tuning", task="classification", task_options={"labels": ["neg", "pos"]},
               data={"train": {"path": str(data)}})
    with pytest.raises(InvalidArgumentError, match=rf"{data}:4: label 'maybe' is not one of task_options.labels"):
        train(WorkerState(), body)
    events = []
    reply = train(WorkerState(), {**body, "data": {"train": {"path": str(data)}, "on_bad_row": "skip"}},
                  emit=lambda _i, _o, event, _t: events.append(event))
    assert reply["status"] == "completed"
    data_event = next(e for e in events if e["event"] == "data")
    assert data_event["train_rows"] == 6 and data_event["skipped"] == 1
