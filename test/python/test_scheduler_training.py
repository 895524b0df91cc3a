"""Real training jobs sharing one frozen model with each other and with inference: each job's losses and
final soft prompt equal those of the same job trained alone, bit for bit."""

from __future__ import annotations

import threading
import time

import torch

from softprompt_worker.ops import load_op_modules
from softprompt_worker.serving.handlers import OpContext, Request, WorkerState, get_op
from softprompt_worker.serving.scheduler import Job, Scheduler
from softprompt_worker.training.checkpoints import load_checkpoint

torch.set_num_threads(1)
assert not load_op_modules(["softprompt_worker.ops.train", "softprompt_worker.ops.inference",
                            "softprompt_worker.ops.embedding"])

MODEL = {"tiny": "gpt2", "device": "cpu"}
GENERATION = [{"input": f"{w}=", "target": w[::-1]} for w in ("abc", "hello", "xy", "kite", "moon", "tea")]
EMBEDDING = [{"query": f"q {w}", "positive": f"doc about {w}"} for w in ("cats", "dogs", "rain", "snow", "sun", "tea")]
TRAINING = {"steps": 6, "batch_size": 2, "log_every": 1, "eval_baseline": False}


def _jobs(tmp_path, tag: str) -> dict[str, dict]:
    return {
        "prompt": {"model": MODEL, "method": "prompt_tuning", "method_config": {"num_virtual_tokens": 3},
                   "task": "generation", "data": {"train": {"rows": GENERATION}},
                   "training": {**TRAINING, "seed": 1}, "run_dir": str(tmp_path / f"prompt-{tag}")},
        "prefix": {"model": MODEL, "method": "prefix_tuning", "method_config": {"num_virtual_tokens": 2},
                   "task": "generation", "data": {"train": {"rows": GENERATION}},
                   "training": {**TRAINING, "seed": 2}, "run_dir": str(tmp_path / f"prefix-{tag}")},
        "suffix": {"model": MODEL, "method": "suffix_tuning", "method_config": {"num_virtual_tokens": 2, "init": "random"},
                   "task": "embedding", "data": {"train": {"rows": EMBEDDING}},
                   "training": {**TRAINING, "seed": 3}, "run_dir": str(tmp_path / f"suffix-{tag}")},
    }


class _Harness:
    """A scheduler over one worker state; collects each request's events and reply."""

    def __init__(self, max_training_jobs: int) -> None:
        self.state = WorkerState()
        self.events: dict[int, list[dict]] = {}
        self.replies: dict[int, object] = {}
        self.done = threading.Condition()
        self.scheduler = Scheduler(self.state, self._compute, self._answer, max_training_jobs=max_training_jobs)
        self.scheduler.start()
        self._next_id = 1

    @staticmethod
    def _compute(job: Job) -> object:
        try:
            return job.spec.handler(job.request, job.ctx)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            return exc

    def _answer(self, job: Job, outcome: object) -> None:
        with self.done:
            self.replies[job.request.id] = outcome if isinstance(outcome, Exception) else outcome.body
            self.done.notify_all()

    def submit(self, op: str, body: dict) -> int:
        id_, self._next_id = self._next_id, self._next_id + 1
        self.events[id_] = []
        emit = lambda _id, _op, event, _tensors: self.events[id_].append(event)  # noqa: E731
        ctx = OpContext(id_, op, self.state, emit, threading.Event())
        self.scheduler.submit(Job(b"", get_op(op), Request(id_, op, body), ctx))
        return id_

    def wait(self, *ids: int) -> None:
        with self.done:
            assert self.done.wait_for(lambda: all(i in self.replies for i in ids), timeout=300)

    def losses(self, id_: int) -> list[float]:
        return [e["loss"] for e in self.events[id_] if e.get("event") == "step"]


def _final(reply) -> dict[str, torch.Tensor]:
    assert isinstance(reply, dict) and reply["status"] == "completed", reply
    return load_checkpoint(reply["checkpoint"]).tensors


def test_jobs_trained_together_with_inference_equal_jobs_trained_alone(tmp_path) -> None:
    alone = _Harness(max_training_jobs=1)
    alone_ids = {name: alone.submit("train", body) for name, body in _jobs(tmp_path, "alone").items()}
    alone.wait(*alone_ids.values())
    alone.scheduler.stop()

    shared = _Harness(max_training_jobs=3)
    ids = {name: shared.submit("train", body) for name, body in _jobs(tmp_path, "shared").items()}
    inference = []
    while not all(i in shared.replies for i in ids.values()):  # inference on the same frozen model meanwhile
        inference.append(shared.submit("generate", {"model": MODEL, "inputs": ["abc=", "kite="], "max_new_tokens": 3}))
        inference.append(shared.submit("embed", {"model": MODEL, "texts": ["doc about cats", "q rain"]}))
        shared.wait(*inference[-2:])
        time.sleep(0.01)
    shared.scheduler.stop()

    assert shared.scheduler.turns.handovers > 0, "the jobs never took turns"
    for i in inference:
        assert not isinstance(shared.replies[i], Exception), shared.replies[i]
    for name in ids:
        assert shared.losses(ids[name]) == alone.losses(alone_ids[name]), name
        together, by_itself = _final(shared.replies[ids[name]]), _final(alone.replies[alone_ids[name]])
        assert together.keys() == by_itself.keys()
        assert all(torch.equal(together[k], by_itself[k]) for k in together), name
    # the inference answers do not depend on what trained meanwhile either
    first = shared.replies[inference[0]]
    assert all(shared.replies[i] == first for i in inference[0::2])
