"""When a training job answers, its slot is already free and the job that waited for it has not started yet:
whoever has the answer and submits the next job is not told `queued` behind a job that has answered (seen
once in CI: test_scheduler's third job at position 2), and the waiting job's events follow the reply."""

from __future__ import annotations

import threading

from softprompt_worker.serving.handlers import OpContext, OpSpec, Reply, Request, WorkerState
from softprompt_worker.serving.scheduler import Job, Scheduler

RELEASE = {1: threading.Event(), 2: threading.Event()}


def _held(req: Request, ctx: OpContext) -> Reply:
    assert RELEASE[req.id].wait(10), f"job {req.id} was never released"
    return Reply(body={"done": req.id})


HELD = OpSpec("held_train", _held, control=False, training=True)


def test_a_job_answers_with_its_slot_free_and_the_next_job_not_yet_started() -> None:
    state = WorkerState()
    jobs_at_answer: dict[int, list[tuple[int, str]]] = {}
    answered = {1: threading.Event(), 2: threading.Event()}

    def compute(job: Job) -> Reply | Exception:
        return job.spec.handler(job.request, job.ctx)

    def answer(job: Job, outcome: Reply | Exception) -> None:
        jobs_at_answer[job.request.id] = [(j["request_id"], j["state"]) for j in scheduler.snapshot()["jobs"]]
        answered[job.request.id].set()

    scheduler = Scheduler(state, compute, answer, max_training_jobs=1)
    scheduler.start()
    try:
        for id_ in (1, 2):
            ctx = OpContext(id_, "held_train", state, lambda *_: None, threading.Event())
            scheduler.submit(Job(b"", HELD, Request(id_, "held_train", {}), ctx))
        RELEASE[1].set()
        assert answered[1].wait(10), "job 1 never answered"
        RELEASE[2].set()
        assert answered[2].wait(10), "job 2 never answered"
    finally:
        for event in RELEASE.values():
            event.set()
        scheduler.stop()
    assert jobs_at_answer[1] == [(2, "queued")], "at job 1's reply: its slot held, or job 2 already running"
    assert jobs_at_answer[2] == []
