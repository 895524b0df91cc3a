"""Fused training (``train_many``, training/fused.py): jobs on one frozen model share each forward and
backward pass, and each job's losses and final prompt equal the same job trained alone."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.ops import load_op_modules
from softprompt_worker.serving.handlers import CancelFlag, OpContext, Request, WorkerState, get_op
from softprompt_worker.training.checkpoints import load_checkpoint

torch.set_num_threads(1)
assert not load_op_modules(["softprompt_worker.ops.train", "softprompt_worker.ops.train_many"])

MODEL = {"tiny": "gpt2", "device": "cpu"}
ROWS = [{"input": f"{w}=", "target": w[::-1]} for w in ("abc", "hello", "xy", "kite", "moon", "stone", "sun", "tea")]
LABELLED = [{"input": f"{w} is", "label": "good" if i % 2 else "bad"}
            for i, w in enumerate(("cake", "mud", "sun", "rain", "gift", "flu", "song", "dust"))]
TRAINING = {"batch_size": 3, "log_every": 1, "eval_baseline": False}


def sweep(tmp_path, tag: str) -> list[dict]:
    """A sweep over method, length, lr, seed, accumulation, steps and task: five jobs, one frozen model."""
    def job(name, method, config, training, task="generation", rows=ROWS, options=None):
        body = {"model": MODEL, "method": method, "method_config": config, "task": task,
                "data": {"train": {"rows": rows}, "eval": {"rows": rows[:3]}},
                "training": {**TRAINING, **training}, "run_dir": str(tmp_path / f"{name}-{tag}")}
        return {**body, "task_options": options} if options else body

    return [
        job("prompt-short", "prompt_tuning", {"num_virtual_tokens": 2}, {"steps": 5, "lr": 3e-2, "seed": 1}),
        job("prompt-long", "prompt_tuning", {"num_virtual_tokens": 6}, {"steps": 3, "lr": 1e-1, "seed": 2,
                                                                           "grad_accumulation": 2}),
        job("prefix-mlp", "prefix_tuning", {"num_virtual_tokens": 3, "prefix_projection": True},
            {"steps": 4, "lr": 1e-2, "seed": 3}),
        job("p-tuning", "p_tuning", {"num_virtual_tokens": 3}, {"steps": 4, "seed": 4}),
        job("classify", "prompt_tuning", {"num_virtual_tokens": 3}, {"steps": 4, "seed": 5, "batch_size": 2},
            task="classification", rows=LABELLED, options={"labels": ["good", "bad"], "loss": "ranking"}),
    ]


def call(state, op, body, cancel=None, on_event=None):
    events: list[dict] = []

    def emit(_id, _op, event, _tensors):
        events.append(event)
        if on_event is not None:
            on_event(event)

    ctx = OpContext(1, op, state, emit, cancel if cancel is not None else CancelFlag())
    return get_op(op).handler(Request(1, op, body), ctx).body, events


def step_losses(events, job=None) -> list[float]:
    return [e["loss"] for e in events if e["event"] == "step" and e.get("job") == job]


def final_prompt(reply) -> dict[str, torch.Tensor]:
    assert reply["status"] == "completed", reply
    return load_checkpoint(reply["checkpoint"]).tensors


def assert_same_job(fused_reply, fused_events, alone_reply, alone_events, job, what) -> None:
    losses, alone = step_losses(fused_events, job), step_losses(alone_events)
    assert len(losses) == len(alone) > 0, what
    assert losses == pytest.approx(alone, rel=1e-5, abs=1e-6), what
    together, by_itself = final_prompt(fused_reply), final_prompt(alone_reply)
    assert together.keys() == by_itself.keys(), what
    for name in together:
        # Adam divides each gradient element by its own running size, so an element whose gradient is ~0 can
        # move by a good part of the lr on rounding noise of a larger batch: seen 7e-5 on 2 of 16k elements
        torch.testing.assert_close(together[name], by_itself[name], rtol=1e-4, atol=1e-4,
                                   msg=lambda m: f"{what}: {name}: {m}")


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """Each job of the sweep trained alone, with `train`."""
    tmp_path = tmp_path_factory.mktemp("alone")
    state = WorkerState()
    return [call(state, "train", body) for body in sweep(tmp_path, "alone")]


def test_a_fused_sweep_equals_each_job_alone_and_shares_its_passes(tmp_path, alone):
    state = WorkerState()
    reply, events = call(state, "train_many", {"jobs": sweep(tmp_path, "fused")})
    assert len(reply["jobs"]) == 5
    for i, (end, (alone_reply, alone_events)) in enumerate(zip(reply["jobs"], alone)):
        assert "reply" in end, end
        assert_same_job(end["reply"], events, alone_reply, alone_events, i, f"jobs[{i}]")
    # one pass per micro-batch of the longest job, not one per job: prompt-long's 3 steps x 2 micro-batches
    # and the others' 4-5 steps all ran in 6 rounds
    assert reply["rounds"] == 6
    ends = [e for e in events if e["event"] == "job_end"]
    assert sorted(e["job"] for e in ends) == [0, 1, 2, 3, 4] and all("reply" in e for e in ends)
    # each job wrote its own run directory, as `train` does
    for i, body in enumerate(sweep(tmp_path, "fused")):
        logged = [json.loads(line) for line in open(f"{body['run_dir']}/events.jsonl")]
        assert [e["event"] for e in logged][-1] == "done"
        assert [e["loss"] for e in logged if e["event"] == "step"] == step_losses(events, i)


def test_one_cancelled_or_failing_job_ends_alone(tmp_path, alone, monkeypatch):
    bodies = sweep(tmp_path, "partial")[:3]
    cancel = CancelFlag()
    from softprompt_worker.tasks.generation import GenerationTask

    real = GenerationTask.loss_from_logits
    calls = {"n": 0}

    def failing(self, batch, logits):  # job 1 (prompt-long) fails in its second round
        if self.method.config.num_virtual_tokens == 6:
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("boom in job 1")
        return real(self, batch, logits)

    monkeypatch.setattr(GenerationTask, "loss_from_logits", failing)

    def on_event(event):
        if event.get("job") == 2 and event["event"] == "step" and event["step"] == 2:
            cancel.parts.add(2)  # `cancel` with part 2

    reply, events = call(WorkerState(), "train_many", {"jobs": bodies}, cancel, on_event)
    first, failed, cancelled = reply["jobs"]
    assert_same_job(first["reply"], events, alone[0][0], alone[0][1], 0, "the job beside them")
    assert failed["error"]["code"] == "internal" and "boom in job 1" in failed["error"]["message"]
    assert cancelled["reply"]["status"] == "cancelled" and cancelled["reply"]["summary"]["steps"] == 2
    assert load_checkpoint(cancelled["reply"]["checkpoint"]).step == 2  # usable, as a cancelled train's is


def test_a_fused_job_resumes_from_its_checkpoint(tmp_path, alone):
    bodies = [sweep(tmp_path, "resume")[i] for i in (0, 2)]
    for body in bodies:
        body["training"] = {**body["training"], "checkpoint_every": 2}
    cancel = CancelFlag()

    def on_event(event):  # the "crash": both stop after step 2's checkpoint
        if event["event"] == "checkpoint" and event["step"] == 2:
            cancel.parts.add(event["job"])

    first, _ = call(WorkerState(), "train_many", {"jobs": bodies}, cancel, on_event)
    resumed = [{**body, "resume_from": end["reply"]["checkpoint"]} for body, end in zip(bodies, first["jobs"])]
    assert all(end["reply"]["summary"]["steps"] == 2 for end in first["jobs"])
    reply, events = call(WorkerState(), "train_many", {"jobs": resumed})
    for j, i in enumerate((0, 2)):
        together, by_itself = final_prompt(reply["jobs"][j]["reply"]), final_prompt(alone[i][0])
        for name in together:
            torch.testing.assert_close(together[name], by_itself[name], rtol=1e-4, atol=1e-4)
        assert step_losses(events, j) == pytest.approx(step_losses(alone[i][1])[2:], rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("change, message", [
    (lambda jobs: jobs[1].update(method="suffix_tuning", task="embedding"), "jobs[1].method: 'suffix_tuning' cannot train fused"),
    (lambda jobs: jobs[1].update(model={"tiny": "t5", "device": "cpu"}), "jobs[1].model: differs from jobs[0].model"),
    (lambda jobs: jobs[1]["training"].update(dtype="bf16"), "jobs[1].training.dtype: 'bf16' differs from jobs[0]'s None"),
    (lambda jobs: jobs[1].update(run_dir=jobs[0]["run_dir"]), "jobs[1].run_dir: the same directory as jobs[0]'s"),
    (lambda jobs: jobs[1]["training"].update(steps=0), "jobs[1]: training.steps"),
    (lambda jobs: jobs.clear(), "jobs: expected a list of 1..64 train bodies, got 0"),
    (lambda jobs: jobs.append("x"), "jobs[2]: expected a train body (a map), got str"),
])
def test_jobs_that_cannot_fuse_are_refused_with_the_reason(tmp_path, change, message):
    jobs = sweep(tmp_path, "bad")[:2]
    change(jobs)
    with pytest.raises(InvalidArgumentError) as caught:
        call(WorkerState(), "train_many", {"jobs": jobs})
    assert message in caught.value.message
    assert not (tmp_path / "prompt-short-bad").exists()  # refused before anything ran


def test_the_group_passes_the_baton_in_order_and_keeps_each_random_stream():
    """Model-free: three members draw random numbers between their micro-batches; each member's draws equal
    its draws when it runs alone, however the others draw."""
    from softprompt_worker.training.fused import FusedGroup

    def draws(members: list[int]) -> dict[int, list[float]]:
        group = FusedGroup(None, members=len(members))
        group._forward_backward = lambda parts: {m: (torch.zeros(()), 0) for m, _ in parts}  # no model
        out: dict[int, list[float]] = {m: [] for m in members}

        def member(index: int, seed: int) -> None:
            with group.joined(index):
                torch.manual_seed(seed)
                for _ in range(3 + index):  # members leave at different rounds
                    out[seed].append(float(torch.rand(())))
                    group._submit(index, object())
                    group._results.pop(index)

        threads = [threading.Thread(target=member, args=(i, seed)) for i, seed in enumerate(members)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in threads)
        return out

    together = draws([10, 20, 30])
    for i, seed in enumerate([10, 20, 30]):
        torch.manual_seed(seed)
        assert together[seed] == [float(torch.rand(())) for _ in range(3 + i)]
