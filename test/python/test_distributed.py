"""Data-parallel training on two gloo ranks under torchrun, against the same job in one process.

One torchrun group (the real launch path: `python -m torch.distributed.run ... -m softprompt_worker
--distributed`) serves the module: a setup error on rank 0 alone, the training job (rows uploaded to rank
0 travel to rank 1 inline), inference on rank 0 alone, and the group's exit when its parent dies.

Semantics checked (distributed.py): with W ranks, ``batch_size`` B and ``grad_accumulation`` A, a step
sees the rows of the single-process run with ``grad_accumulation`` A x W, in the same order, with the same
per-micro-batch loss. Measured here (torch 2.13 CPU, one thread per process): the step losses and the
final soft prompt equal that run's bit for bit (gradients are averaged as g0/2 + g1/2 either way, and
halving is exact). Against one process with batch 2B (the same rows in one batch; every target has the
same token count, so the per-token mean is the same number) the losses differ by <= 1e-7 relative and
the prompt by <= 4e-7 absolute (its values reach 0.77): the forward pads to another length and sums in
another order. The test allows 1e-5 there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import PYTHON_SRC, Client

from softprompt_worker.training.checkpoints import load_checkpoint
from softprompt_worker.distributed import ShardedStream
from softprompt_worker.serving.handlers import OpContext, Request, WorkerState
from softprompt_worker.ops.train import train_op

WORDS = ["abc", "hey", "kit", "moo", "sto", "sun", "tea", "xyz", "dog", "cat", "owl", "elk"]
ROWS = [{"input": f"{w}=", "target": w[::-1]} for w in WORDS]  # every target: 3 tokens + EOS
STEPS = 10
MODEL = {"tiny": "gpt2", "overrides": {"initializer_range": 0.1}, "device": "cpu"}


# Suffix tuning with GradCache: the contrastive loss couples the rows of a micro-batch and the gradients
# reach the suffix through a replay inside backward, the path DDP's own all-reduce does not cover.
PAIRS = [{"query": f"{w} sound", "positive": f"the {w} says {w[::-1]}"} for w in WORDS[:8]]
SUFFIX = {"method": "suffix_tuning", "method_config": {"num_virtual_tokens": 2, "init": "random"},
          "task": "embedding", "task_options": {"grad_cache_mini_batch": 2}}


def _job(run_dir: Path, data: dict[str, Any], *, batch_size: int, grad_accumulation: int = 1,
         **kind: Any) -> dict[str, Any]:
    job = {"model": MODEL, "method": "prompt_tuning", "method_config": {"num_virtual_tokens": 4},
           "task": "generation", "data": data, "run_dir": str(run_dir),
           "training": {"steps": STEPS, "batch_size": batch_size, "grad_accumulation": grad_accumulation,
                        "log_every": 1, "lr": 0.1, "schedule": "linear"}}
    job["training"].update(kind.pop("training", {}))
    return job | kind


def _single_process(run_dir: Path, rows: list[dict[str, Any]] = ROWS, kind: dict[str, Any] | None = None,
                    **batch: int) -> tuple[list[float], dict[str, torch.Tensor]]:
    events: list[dict[str, Any]] = []
    ctx = OpContext(1, "train", WorkerState(), lambda id_, op, body, tensors: events.append(body))
    body = _job(run_dir, {"train": {"rows": rows}}, **batch, **(kind or {}))
    reply = train_op(Request(id=1, op="train", body=body), ctx)
    return [e["loss"] for e in events if e["event"] == "step"], load_checkpoint(reply.body["checkpoint"]).tensors


class _Numbers:
    """A stand-in DataStream: batches 0, 1, 2, ... and the cursor after the last one drawn."""

    def __init__(self) -> None:
        self.n = 0

    def __next__(self) -> int:
        self.n += 1
        return self.n - 1

    def cursor(self) -> dict[str, int]:
        return {"epoch": 0, "batch": self.n}

    def seek(self, cursor: dict[str, int]) -> None:
        self.n = cursor["batch"]


def test_each_rank_takes_every_world_size_th_batch_and_the_cursor_stays_global() -> None:
    shards = [ShardedStream(_Numbers(), rank, 3) for rank in range(3)]
    assert [[next(s) for _ in range(4)] for s in shards] == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    assert {json.dumps(s.cursor()) for s in shards} == {json.dumps({"epoch": 0, "batch": 12})}
    shards[1].seek({"epoch": 0, "batch": 3})
    assert next(shards[1]) == 4


class Group:
    """`torchrun --nproc-per-node 2` running the worker, its parent a `sleep` this test can kill."""

    def __init__(self, tmp: Path) -> None:
        self.parent = subprocess.Popen(["sleep", "600"])
        self.log = tmp / "group.log"
        env = {**os.environ, "PYTHONPATH": str(PYTHON_SRC), "OMP_NUM_THREADS": "1"}
        sock = tmp / "ipc"
        sock.mkdir(mode=0o700)
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                 "-m", "softprompt_worker", "--distributed", "--endpoint", f"ipc://{sock}/worker.sock",
                 "--parent-pid", str(self.parent.pid)], stdout=subprocess.PIPE, stderr=err, env=env)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("SOFTPROMPT_READY "), f"no READY line: {line!r}\n{self.log.read_text()}"
        self.ready = json.loads(line.split(" ", 1)[1])
        self.client = Client(self.ready["endpoint"], timeout_ms=120_000)
        self.ids = iter(range(1, 1_000_000))

    def call(self, op: str, body: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(final reply or error, events before it)."""
        id_ = next(self.ids)
        self.client.send(id_, op, body)
        events = []
        while True:
            header, _ = self.client.recv()
            assert header["id"] == id_, header
            if header["kind"] != "event":
                return header, events
            events.append(header["body"])

    def log_line(self, text: str, timeout: float = 30) -> str:
        """The first line of the group's stderr that contains ``text`` (ranks log independently: wait)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.log.read_text().splitlines() if text in line]
            if lines:
                return lines[0]
            assert time.monotonic() < deadline, f"no line with {text!r} in:\n{self.log.read_text()}"
            time.sleep(0.1)

    def close(self) -> None:
        self.client.close()
        for proc in (self.proc, self.parent):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory):
    g = Group(tmp_path_factory.mktemp("group"))
    yield g
    g.close()


def test_a_setup_error_on_rank_0_alone_ends_the_job_on_both_ranks(group: Group, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")  # rank 0 cannot make its run directory under a file; rank 1 runs in a scratch one
    job = _job(blocker / "run", {"train": {"rows": ROWS}}, batch_size=2)
    reply, events = group.call("train", job)
    assert (reply["kind"], reply["body"]["code"]) == ("error", "invalid_argument"), reply
    assert "run_dir" in reply["body"]["message"] and events == []
    group.log_line("[rank1/2]: job train ended with InvalidArgumentError: rank 0 of 2: run_dir")


def test_two_ranks_follow_the_single_process_trajectory(group: Group, tmp_path: Path) -> None:
    reply, _ = group.call("data_open")
    dataset = reply["body"]["dataset"]
    assert group.call("data_append", {"dataset": dataset, "rows": ROWS})[0]["body"] == {"count": len(ROWS)}
    reply, events = group.call("train", _job(tmp_path / "ddp", {"train": {"dataset": dataset}}, batch_size=2))
    assert reply["kind"] == "reply" and reply["body"]["status"] == "completed", reply
    kinds = [e["event"] for e in events]
    assert kinds == ["data", "started", *["step"] * STEPS, "checkpoint", "selection", "done"], kinds  # rank 0's, once
    assert events[1]["total_steps"] == STEPS
    ddp_losses = [e["loss"] for e in events if e["event"] == "step"]
    ddp_soft = load_checkpoint(reply["body"]["checkpoint"]).tensors
    assert ddp_losses[-1] < ddp_losses[0]
    assert sorted(os.listdir(tmp_path / "ddp" / "checkpoints")) == [f"step-{STEPS:08d}.pb"]

    accumulated_losses, accumulated_soft = _single_process(tmp_path / "acc", batch_size=2, grad_accumulation=2)
    assert ddp_losses == accumulated_losses
    for name, tensor in accumulated_soft.items():
        assert torch.equal(ddp_soft[name], tensor), name

    batched_losses, batched_soft = _single_process(tmp_path / "one", batch_size=4)
    np.testing.assert_allclose(ddp_losses, batched_losses, rtol=1e-5, atol=0)
    for name, tensor in batched_soft.items():
        torch.testing.assert_close(ddp_soft[name], tensor, rtol=0, atol=1e-5)

    # Inference runs on rank 0 alone while rank 1 waits for the next collective job.
    loaded, _ = group.call("prompt_load", {"name": "p", "path": reply["body"]["checkpoint"], "model": MODEL})
    assert loaded["kind"] == "reply", loaded
    generated, _ = group.call("generate", {"prompt": "p", "inputs": ["abc=", "sun="], "max_new_tokens": 3})
    assert generated["kind"] == "reply" and len(generated["body"]["outputs"]) == 2, generated


def test_early_stopping_ends_the_job_on_both_ranks_at_rank_0s_word(group: Group, tmp_path: Path) -> None:
    """No improvement can clear min_delta, so after one evaluation past the baseline the job stops; both
    ranks stop together (the group takes the next job), and only rank 0 writes the best prompt."""
    stopping = {"eval_every": 2, "early_stopping": {"patience": 1, "min_delta": 1e9}}
    job = _job(tmp_path / "ddp", {"train": {"rows": ROWS}, "eval": {"rows": ROWS[:4]}}, batch_size=2,
               training=stopping)
    reply, events = group.call("train", job)
    assert reply["kind"] == "reply" and reply["body"]["status"] == "completed", reply
    summary = reply["body"]["summary"]
    assert summary["steps"] == 2 and summary["selection"]["stopped_early_at"] == 2, summary
    assert summary["best"]["step"] == 0 and summary["selection"]["beat_baseline"] is False
    assert [e["step"] for e in events if e["event"] == "eval"] == [0, 2]
    assert sorted(os.listdir(tmp_path / "ddp" / "checkpoints")) == ["best.pb", "step-00000002.pb"]
    pong, _ = group.call("ping")
    assert pong["kind"] == "reply", pong


def test_two_ranks_with_grad_cache_equal_one_process_bit_for_bit(group: Group, tmp_path: Path) -> None:
    reply, events = group.call("train", _job(tmp_path / "ddp", {"train": {"rows": PAIRS}}, batch_size=4, **SUFFIX))
    assert reply["kind"] == "reply" and reply["body"]["status"] == "completed", reply
    ddp_losses = [e["loss"] for e in events if e["event"] == "step"]
    ddp_soft = load_checkpoint(reply["body"]["checkpoint"]).tensors
    losses, soft = _single_process(tmp_path / "one", PAIRS, SUFFIX, batch_size=4, grad_accumulation=2)
    assert ddp_losses == losses
    assert torch.equal(ddp_soft["suffix"], soft["suffix"]), (ddp_soft["suffix"] - soft["suffix"]).abs().max()


@pytest.mark.parametrize("method", ["prompt_tuning", "prefix_tuning"])
def test_two_ranks_with_a_sharded_model_equal_one_process_bit_for_bit(group: Group, tmp_path: Path,
                                                                       method: str) -> None:
    """training.shard_model: FSDP2 keeps half of every layer on each rank and gathers it to run; the step
    losses and the prompt are those of one process (the gathered weights are the same numbers)."""
    kind = {"method": method, "method_config": {"num_virtual_tokens": 4}, "model": {**MODEL, "tiny": "llama"},
            # prefix tuning also recomputes its layers in backward: FSDP gathers them again for it
            "training": {"gradient_checkpointing": method == "prefix_tuning"}}
    job = _job(tmp_path / "sharded", {"train": {"rows": ROWS}}, batch_size=2, **dict(kind))
    job["training"]["shard_model"] = True
    reply, events = group.call("train", job)
    assert reply["kind"] == "reply" and reply["body"]["status"] == "completed", reply
    sharded_losses = [e["loss"] for e in events if e["event"] == "step"]
    sharded_soft = load_checkpoint(reply["body"]["checkpoint"]).tensors
    losses, soft = _single_process(tmp_path / "one", ROWS, dict(kind), batch_size=2, grad_accumulation=2)
    assert sharded_losses == losses
    for name, tensor in soft.items():
        assert torch.equal(sharded_soft[name], tensor), name
    # Rank 1 really held about half of the weights (all but the embedding, which stays whole), and inference
    # on rank 0 still uses an unsharded copy: the sharded model is kept for collective jobs only.
    line = group.log_line("[rank1/2]: sharded tiny:llama over 2 ranks: this rank holds ")
    held, total = map(int, line.split("holds ")[1].split(" weights")[0].split(" of its "))
    embedding = 263 * 64  # the byte vocabulary x hidden: replicated; the rest split by rows (263 = 132 + 131)
    assert abs(held - (embedding + (total - embedding) // 2)) <= 64, (held, total)
    generated, _ = group.call("generate", {"model": job["model"], "inputs": ["abc="],
                                           "max_new_tokens": 2})
    assert generated["kind"] == "reply", generated


def test_shard_model_in_one_process_says_what_it_needs(tmp_path: Path) -> None:
    job = _job(tmp_path / "one", {"train": {"rows": ROWS}}, batch_size=2)
    job["training"]["shard_model"] = True
    ctx = OpContext(1, "train", WorkerState(), lambda *a: None)
    with pytest.raises(Exception, match="shard_model: needs a worker group"):
        train_op(Request(id=1, op="train", body=job), ctx)


def test_the_group_exits_when_its_parent_dies(group: Group) -> None:
    follower = group.log_line("[rank1/2]: following rank 0 (pid ")
    ranks = [group.ready["pid"], int(follower.rsplit("(pid ", 1)[1].rstrip(")"))]
    group.parent.send_signal(signal.SIGKILL)
    group.parent.wait()
    assert group.proc.wait(timeout=60) == 0, group.log.read_text()
    time.sleep(0.2)
    for pid in ranks:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    group.log_line("[rank1/2]: stopped by rank 0")
