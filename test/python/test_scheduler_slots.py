"""When a training job answers, its slot is already free and the job that waited for it has not started yet:
whoever has the answer and submits the next job is not told `queued` behind a job that has answered (seen
once in CI: test_scheduler's third job at position 2), and the waiting job's events follow the reply."""

from __future__ import annotations

import threading

from softprompt_worker.serving.handlers import OpContext, OpSpec, Reply, Request, WorkerState
from softprompt_worker.serving.scheduler import Job, Scheduler


def test_a_job_answers_with_its_slot_free_and_the_next_job_not_yet_started() -> None:
    state = WorkerState()
    release = {1: threading.Event(), 2: threading.Event()}  # each job runs until the test lets it end
    answered = {1: threading.Event(), 2: threading.Event()}
    jobs_at_answer: dict[int, list[tuple[int, str]]] = {}

    def held(req: Request, ctx: OpContext) -> Reply:
        assert release[req.id].wait(10), f"job {req.id} was never released"
        return Reply(body={"done": req.id})

    def compute(job: Job) -> Reply | Exception:
        return job.spec.handler(job.request, job.ctx)

    def answer(job: Job, outcome: Reply | Exception) -> None:
        jobs_at_answer[job.request.id] = [(j["request_id"], j["state"]) for j in scheduler.snapshot()["jobs"]]
        answered[job.request.id].set()

    spec = OpSpec("held_train", held, control=False, training=True)
    scheduler = Scheduler(state, compute, answer, max_training_jobs=1)
    scheduler.start()
    try:
        for id_ in (1, 2):
            ctx = OpContext(id_, "held_train", state, lambda *_: None, threading.Event())
            scheduler.submit(Job(b"", spec, Request(id_, "held_train", {}), ctx))
        for id_ in (1, 2):
            release[id_].set()
            assert answered[id_].wait(10), f"job {id_} never answered"
    finally:
        for event in release.values():
            event.set()
        scheduler.stop()
    assert jobs_at_answer[1] == [(2, "queued")], "at job 1's reply: its slot held, or job 2 already running"
    assert jobs_at_answer[2] == []
