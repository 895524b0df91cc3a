"""A training job frees its slot before its reply goes out: whoever has the answer and submits the next job
finds the slot free. (Before, the reply went out first, and a job submitted on it could be told `queued`
behind a job that had already answered: seen once in CI as test_scheduler's third job at position 2.)"""

from __future__ import annotations

import threading

from softprompt_worker.serving.handlers import OpContext, OpSpec, Reply, Request, WorkerState
from softprompt_worker.serving.scheduler import Job, Scheduler


def _quick(req: Request, ctx: OpContext) -> Reply:
    return Reply(body={"done": req.id})


QUICK = OpSpec("quick_train", _quick, control=False, training=True)


def test_a_job_that_answers_no_longer_holds_a_slot() -> None:
    state = WorkerState()
    seen_at_answer: dict[int, list[int]] = {}
    answered = threading.Event()

    def compute(job: Job) -> Reply | Exception:
        return job.spec.handler(job.request, job.ctx)

    def answer(job: Job, outcome: Reply | Exception) -> None:
        seen_at_answer[job.request.id] = [j["request_id"] for j in scheduler.snapshot()["jobs"]]
        answered.set()

    scheduler = Scheduler(state, compute, answer, max_training_jobs=1)
    scheduler.start()
    try:
        ctx = OpContext(1, "quick_train", state, lambda *_: None, threading.Event())
        scheduler.submit(Job(b"", QUICK, Request(1, "quick_train", {}), ctx))
        assert answered.wait(10), "the job never answered"
    finally:
        scheduler.stop()
    assert seen_at_answer == {1: []}, "the job still held its slot when its reply went out"
