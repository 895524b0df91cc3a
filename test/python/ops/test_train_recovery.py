"""Crash recovery of the train op (runs.py): saved rows, run_inspect, and disk failures.

A crash is simulated in-process by an exception raised from the event callback (the on-disk state it
leaves is what a kill -9 leaves; test/ts/integration/crash-resume.test.ts kills real workers). Disk
failures are injected by errno at each step of the atomic write; the TS test adds a real EFBIG.
"""

from __future__ import annotations

import errno
import json
import os
import threading

import pytest
import torch

from softprompt_worker.training import checkpoints
from softprompt_worker.errors import StorageError
from softprompt_worker.ops import load_op_modules
from softprompt_worker.serving.handlers import OpContext, Request, WorkerState, get_op

torch.set_num_threads(1)
assert not load_op_modules(["softprompt_worker.ops.data", "softprompt_worker.ops.train",
                            "softprompt_worker.ops.checkpoints"])

ROWS = [{"input": f"{w}=", "target": w[::-1]} for w in ("abc", "hello", "xy", "kite", "moon", "stone", "sun", "tea")]


class Crash(Exception):
    """Stands in for the worker dying at this event."""


def call(state, name, body, *, crash_at_step=None):
    events = []

    def emit(_id, _op, event, _tensors):
        events.append(event)
        if crash_at_step is not None and event.get("event") == "step" and event["step"] == crash_at_step:
            raise Crash(f"crash at step {crash_at_step}")

    reply = get_op(name).handler(Request(1, name, body), OpContext(1, name, state, emit, threading.Event()))
    return reply.body, events


def job(tmp_path, run="run", **over):
    body = {"model": {"tiny": "gpt2", "device": "cpu"}, "method": "prompt_tuning",
            "method_config": {"num_virtual_tokens": 4}, "task": "generation",
            "data": {"train": {"rows": ROWS}, "eval_fraction": 0.25},
            "training": {"steps": 6, "batch_size": 3, "log_every": 1, "checkpoint_every": 2, "seed": 3},
            "run_dir": str(tmp_path / run), "job_id": "job-1"}
    body.update(over)
    return body


def uploaded(state) -> dict:
    """The rows sent as a dataset, the way the TS client uploads them."""
    ds = call(state, "data_open", {})[0]["dataset"]
    call(state, "data_append", {"dataset": ds, "rows": ROWS})
    return {"train": {"dataset": ds}, "eval_fraction": 0.25}


def test_a_crashed_job_resumes_in_a_fresh_worker_from_its_saved_rows_to_the_same_end(tmp_path):
    reference, _ = call(WorkerState(), "train", job(tmp_path, "reference"))

    first = WorkerState()
    with pytest.raises(Exception, match="crash at step 5"):
        call(first, "train", job(tmp_path, data=uploaded(first)), crash_at_step=5)
    run = tmp_path / "run"
    (run / "checkpoints" / ".step-00000006.pb.x1y2.tmp").write_bytes(b"half a checkpoint")  # a killed write

    fresh = WorkerState()  # the restarted worker: the uploaded dataset is gone
    info, _ = call(fresh, "run_inspect", {"run_dir": str(run), "job_id": "job-1"})
    assert info["checkpoint"] == {"path": str(run / "checkpoints" / "step-00000004.pb"), "step": 4}
    assert info["data"] == {"train": str(run / "data" / "train.jsonl"), "eval": str(run / "data" / "eval.jsonl"),
                            "train_rows": 6, "eval_rows": 2}
    saved = [json.loads(line) for line in (run / "data" / "train.jsonl").read_text().splitlines()]
    assert all(row in ROWS for row in saved) and len(saved) == 6

    body = job(tmp_path, data={"train": {"path": info["data"]["train"]}, "eval": {"path": info["data"]["eval"]}},
               resume_from=info["checkpoint"]["path"])
    resumed, events = call(fresh, "train", body)
    assert events[0] == {"event": "data", "train_rows": 6, "eval_rows": 2, "skipped": 0, "skipped_rows": []}
    assert events[1]["start_step"] == 4
    assert [e["step"] for e in events if e["event"] == "step"] == [5, 6]
    assert resumed["summary"]["final_loss"] == reference["summary"]["final_loss"]  # exact, on the CPU
    assert resumed["summary"]["metrics"] == reference["summary"]["metrics"]
    assert not list((run / "checkpoints").glob("*.tmp"))
    logged = [json.loads(line)["event"] for line in (run / "events.jsonl").read_text().splitlines()]
    assert "error" in logged and logged[-1] == "done"  # one log across the crash and the resume


def test_run_inspect_counts_only_this_jobs_verified_files(tmp_path):
    state = WorkerState()
    call(state, "train", job(tmp_path, training={"steps": 4, "batch_size": 3, "checkpoint_every": 2}))
    run = tmp_path / "run"
    newest = run / "checkpoints" / "step-00000004.pb"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))

    info, _ = call(state, "run_inspect", {"run_dir": str(run), "job_id": "job-1"})
    assert info["checkpoint"]["step"] == 2  # the corrupt newest one is skipped, and reported
    assert [i["path"] for i in info["invalid"]] == [str(newest)] and "corrupt" in info["invalid"][0]["error"]
    other, _ = call(state, "run_inspect", {"run_dir": str(run), "job_id": "another-job"})
    assert other["checkpoint"] is None and other["data"] is None

    (run / "data" / "train.jsonl").write_text('{"input": "x=", "target": "x"}\n')  # not the rows it trained on
    tampered, _ = call(state, "run_inspect", {"run_dir": str(run), "job_id": "job-1"})
    assert tampered["data"] is None and "sha256" in tampered["invalid"][-1]["error"]
    empty, _ = call(state, "run_inspect", {"run_dir": str(tmp_path / "never-used")})
    assert empty == {"run_dir": str(tmp_path / "never-used"), "checkpoint": None, "data": None, "invalid": []}
    assert not (tmp_path / "never-used").exists()  # inspecting writes nothing


def _fail_second_checkpoint(monkeypatch, where: str, code: int) -> None:
    """The second step checkpoint's write fails with ``code`` in ``where`` (creating the temp file / fsync /
    replace of atomic_write, which writes a run directory's files through files.write_file_under); best.pb
    (model selection) is written normally."""
    from softprompt_worker import files

    writes = {"n": 0}
    real_write = checkpoints.atomic_write
    module, where = (files, "_create_temp") if where == "mkstemp" else (checkpoints.os, where)

    def refuse(*_args, **_kwargs):
        raise OSError(code, os.strerror(code))

    def atomic_write(target, data, root=None):
        if not os.path.basename(str(target)).startswith("step-"):
            return real_write(target, data, root)
        writes["n"] += 1
        if writes["n"] != 2:
            return real_write(target, data, root)
        real = getattr(module, where)
        setattr(module, where, refuse)
        try:
            return real_write(target, data, root)
        finally:
            setattr(module, where, real)

    monkeypatch.setattr(checkpoints, "atomic_write", atomic_write)


@pytest.mark.parametrize("where, code", [("fsync", errno.ENOSPC), ("mkstemp", errno.EACCES), ("replace", errno.EROFS)],
                         ids=["full-disk", "unwritable-dir", "read-only-fs"])
def test_a_refused_checkpoint_is_a_storage_error_and_keeps_the_previous_one(tmp_path, monkeypatch, where, code):
    _fail_second_checkpoint(monkeypatch, where, code)
    run = tmp_path / "run"
    with pytest.raises(StorageError) as info:
        call(WorkerState(), "train", job(tmp_path))
    name = errno.errorcode[code]
    previous, failed = run / "checkpoints" / "step-00000002.pb", run / "checkpoints" / "step-00000004.pb"
    assert info.value.details == {"path": str(failed), "errno": name, "previous_checkpoint": str(previous)}
    assert f"checkpoint (step 4): cannot write {str(failed)!r}" in info.value.message and f"({name})" in info.value.message
    assert f"the previous checkpoint {str(previous)!r} is intact" in info.value.message
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pb", "step-00000002.pb"]  # no temp file
    assert checkpoints.load_checkpoint(previous).step == 2  # verifies
    last = json.loads((run / "events.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "error" and last["code"] == "storage"
