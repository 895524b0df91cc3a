"""What runs when: the inference lane, training jobs, and the turns they take on the device.

The socket loop hands every compute op to `Scheduler.submit`. Policy (proto/WIRE.md "Scheduling"):

- **Inference** ops (``embed``, ``rerank``, ``classify``, ``generate``, ``evaluate``, and every other op that
  is neither control nor training) run on one **inference lane** in arrival order. The lane takes the
  device for everything queued at that moment, then hands it back. Requests in that batch that differ
  only in their rows run as one (``coalesce.py``), waiting up to ``batch_wait_s`` for more to arrive.
- **Training** ops (``@op(..., training=True)``: ``train``) are jobs. Up to ``max_training_jobs`` run at once,
  each on its own thread; later ones queue (FIFO) and start as running ones end. A queued job gets a
  ``queued`` event with its place in the queue; cancelling it ends it at once. On CUDA a job also waits
  (first in line, so the order holds) while the running jobs leave too little free memory for its planned
  need (the op's ``admission``: planner/admission.py); its ``queued`` event says so in ``reason``.
- Running jobs and the lane take **turns** on the device (``turns.py``): a job hands the device over between
  micro-batches when someone waits; waiting inference goes first, jobs go round-robin. So an inference call
  waits about one micro-batch, not a whole job, and N jobs share the device in equal micro-batches.
- A job that fails or is cancelled ends alone: the others, and their event streams, go on.

``--schedule fifo`` turns all this off: every compute op, training included, runs on the inference lane
one after another in arrival order (the worker's behaviour before the scheduler; for comparison in
bench/scheduling and for debugging).

Under torchrun (``--distributed``) every rank must run the same jobs in the same order, so the group
trains one job at a time (``max_training_jobs`` 1); inference still runs between its micro-batches on
rank 0.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from softprompt_worker.errors import BusyError
from softprompt_worker.serving.coalesce import MAX_BATCH_ROWS, BatchKey, batch_key, group
from softprompt_worker.serving.handlers import OpContext, OpSpec, Reply, Request, WorkerState
from softprompt_worker.serving.health import IDLE_BEAT_S
from softprompt_worker.serving.turns import DeviceTurns, Turn

log = logging.getLogger("softprompt_worker")

MAX_TRAINING_JOBS = 2  # default: training jobs that share the device at once (the rest queue)
MAX_BURST = 256  # inference ops run in one turn of the lane at most
SCHEDULES = ("turns", "fifo")


@dataclass
class Job:
    """One compute request on its way through the scheduler."""

    peer: bytes
    spec: OpSpec
    request: Request
    ctx: OpContext
    client: str = ""
    submitted: float = field(default_factory=time.monotonic)
    progress: dict[str, Any] = field(default_factory=dict)  # training: the last started/step event's numbers


#: Runs one job's handler (the server's): ``compute(job) -> its reply or its error``, never raises.
ComputeFn = Callable[[Job], Reply | Exception]
#: Sends a job its reply or its error and forgets the request (the server's): ``answer(job, outcome)``.
AnswerFn = Callable[[Job, Reply | Exception], None]
#: Runs jobs that coalesce as one request and sends each its reply (the server's, ``merged.py``); tells
#: ``counted(n)`` how many the merged run answers before it answers them; never raises.
RunMergedFn = Callable[[list[Job], Callable[[int], None]], None]


class Scheduler:
    """The inference lane, the training jobs and the device turns between them. Thread-safe."""

    def __init__(self, state: WorkerState, compute: ComputeFn, answer: AnswerFn, *,
                 run_merged: RunMergedFn | None = None, max_queued: int = 1024,
                 max_training_jobs: int = MAX_TRAINING_JOBS, schedule: str = "turns",
                 max_batch_rows: int = MAX_BATCH_ROWS, batch_wait_s: float = 0.0) -> None:
        if max_training_jobs < 1:
            raise ValueError("max_training_jobs must be at least 1")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        self.fifo = schedule == "fifo"
        self.max_batch_rows = max_batch_rows
        self.batch_wait_s = batch_wait_s
        self.merged: dict[str, dict[str, int]] = {}  # per op: coalesced runs, and the requests they answered
        self.state = state
        self.max_queued = max_queued
        self.max_training_jobs = max_training_jobs
        self.turns = DeviceTurns()
        self._compute = compute
        self._answer = answer
        self._run_merged = run_merged
        self._inference: queue.Queue[Job | None] = queue.Queue()
        self._lane_turn = Turn("inference", inference=True)
        self._lock = threading.Lock()
        self._running: dict[tuple[bytes, int], Job] = {}  # training jobs that have started
        self._pending: deque[Job] = deque()  # training jobs waiting for a slot
        self._threads: list[threading.Thread] = []
        self._stopping = False
        state.scheduler = self

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        lane = threading.Thread(target=self._lane_loop, name="inference-lane", daemon=True)
        lane.start()
        self._threads.append(lane)

    def stop(self, timeout: float = 5.0) -> list[Job]:
        """Stop taking work; returns the jobs that never started (the caller forgets them). Running ops
        are not interrupted here (the caller sets their cancel flags first)."""
        with self._lock:
            self._stopping = True
            dropped = list(self._pending)
            self._pending.clear()
        while True:
            try:
                job = self._inference.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                dropped.append(job)
        self._inference.put(None)
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return dropped

    # ------------------------------------------------------------------------------ the socket loop's side

    def submit(self, job: Job) -> None:
        """Queue `job` (called by the socket loop); raises `BusyError` when `max_queued` requests wait."""
        waiting = self._inference.qsize() + len(self._pending)
        if waiting >= self.max_queued:
            raise BusyError(f"{self.max_queued} requests are already queued; retry when some finish",
                            details={"queued": waiting})
        if not job.spec.training or self.fifo:
            self._inference.put(job)
            return
        job.ctx._emit_fn = _recording(job, job.ctx._emit_fn)
        with self._lock:
            reason = None
            if len(self._running) < self.max_training_jobs and not self._pending:
                reason = self._wait_reason(job)
                if reason is None:
                    self._start(job)
                    return
            self._pending.append(job)
            position = len(self._pending)
        job.ctx.emit({"event": "queued", "position": position, "running": self.max_training_jobs,
                      **({"reason": reason} if reason else {})})

    def snapshot(self) -> dict[str, Any]:
        """What runs and waits, for the ``status`` op."""
        now = time.monotonic()
        with self._lock:
            running = [_describe(job, "running", now) for job in self._running.values()]
            pending = [_describe(job, "queued", now) for job in self._pending]
        return {"jobs": running + pending,
                "queues": {"inference": self._inference.qsize(), "training": len(pending)},
                "device": {"holder": self.turns.holder(), "waiting": self.turns.waiting(),
                           "handovers": self.turns.handovers},
                "max_training_jobs": 1 if self.fifo else self.max_training_jobs,
                "batching": self._batching()}

    # ------------------------------------------------------------------------------ inference lane

    def _lane_loop(self) -> None:
        monitor = self.state.compute
        while True:
            try:
                job = self._inference.get(timeout=IDLE_BEAT_S)
            except queue.Empty:
                if self.turns.holder() is None:
                    monitor.beat()  # idle: alive (a training job beats for itself)
                self._end_cancelled_pending()
                continue
            if job is None:
                return
            burst, stop = self._burst(job)
            self.turns.take(self._lane_turn)
            try:
                for members in self._groups(burst):
                    if len(members) == 1 or self._run_merged is None:
                        for member in members:
                            self._run_alone(member)
                    else:
                        self._run_merged(members, functools.partial(self._count_merged, members[0].request.op))
            finally:
                self.turns.give_back(self._lane_turn)
            self._end_cancelled_pending()  # also when the lane is never idle for a second
            if stop:
                return

    def _burst(self, first: Job) -> tuple[list[Job], bool]:
        """`first` and what else is queued (up to MAX_BURST); with `batch_wait_s`, a request that can
        coalesce waits that long for others. Returns (jobs, whether the stop sentinel came)."""
        burst = [first]
        wait = self.batch_wait_s if first.spec.coalesce is not None and not self.fifo else 0.0
        deadline = time.monotonic() + wait
        while len(burst) < MAX_BURST:
            try:
                remaining = deadline - time.monotonic()
                more = self._inference.get(timeout=remaining) if remaining > 0 else self._inference.get_nowait()
            except queue.Empty:
                break
            if more is None:
                return burst, True
            burst.append(more)
        return burst, False

    def _groups(self, burst: list[Job]) -> list[list[Job]]:
        if self.fifo or self._run_merged is None:
            return [[job] for job in burst]

        def key_of(job: Job) -> BatchKey | None:
            rule = job.spec.coalesce
            if rule is None or job.request.tensors:
                return None
            return batch_key(job.request.op, job.request.body, rule, job.client)

        return group(burst, key_of, self.max_batch_rows)

    def _count_merged(self, op: str, answered: int) -> None:  # on the lane
        if answered:
            counts = self.merged.get(op) or {"runs": 0, "requests": 0}
            self.merged[op] = {"runs": counts["runs"] + 1, "requests": counts["requests"] + answered}

    def _batching(self) -> dict[str, Any]:
        """Cross-request batching's settings and counters: merged runs and the requests they answered, in
        all and per op (read by the socket loop while the lane counts: each op's counts are replaced whole)."""
        by_op = dict(self.merged)
        return {"max_rows": self.max_batch_rows, "wait_ms": self.batch_wait_s * 1000,
                "runs": sum(c["runs"] for c in by_op.values()),
                "requests": sum(c["requests"] for c in by_op.values()), "ops": by_op}

    # ------------------------------------------------------------------------------ training jobs

    def _start(self, job: Job) -> None:  # under self._lock
        key = (job.peer, job.request.id)
        self._running[key] = job
        thread = threading.Thread(target=self._train, args=(job,), name=f"train-{job.request.id}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _train(self, job: Job) -> None:
        turn = Turn(f"{job.request.op} {job.request.id}", inference=False)
        job.ctx._yield_fn = lambda: self._yield(turn, job)
        self.turns.take(turn)
        outcome: Reply | Exception = RuntimeError(f"request {job.request.id} ended without an outcome")
        try:
            outcome = self._compute(job)
        finally:
            # The slot frees before the reply goes out, so a caller who has its answer and submits the next
            # job is not told `queued` behind a job that has already answered; a job that waited starts after
            # the reply, so its events follow it. (A job submitted in between queues behind the waiting ones.)
            self.turns.give_back(turn)
            with self._lock:
                self._running.pop((job.peer, job.request.id), None)
            self._answer(job, outcome)
            with self._lock:
                self._start_pending()

    def _yield(self, turn: Turn, job: Job) -> None:
        if not self.turns.others_wait():
            return
        self.turns.yield_turn(turn)  # whoever runs meanwhile reports itself to the monitor
        self.state.compute.started(job.request.op, job.request.id)

    def _start_pending(self) -> None:  # under self._lock
        while self._pending and len(self._running) < self.max_training_jobs and not self._stopping:
            if self._wait_reason(self._pending[0]) is not None:  # first in line waits for memory; so do the rest
                return
            self._start(self._pending.popleft())

    def _wait_reason(self, job: Job) -> str | None:  # under self._lock
        """Why `job` cannot start beside the running jobs (its op's ``admission``: memory on CUDA); None
        when it can. With no job running it always can: its own checks decide."""
        if not self._running or job.spec.admission is None:
            return None
        try:
            return job.spec.admission(job.request.body, self.state)
        except Exception:  # noqa: BLE001 - an admission that fails must not stop the queue
            log.exception("admission check of %s %s failed; starting it", job.request.op, job.request.id)
            return None

    def _end_cancelled_pending(self) -> None:
        """A queued job whose cancel flag is set ends now (its `cancelled` error), not when a slot frees."""
        with self._lock:
            cancelled = [job for job in self._pending if job.ctx.cancel_event.is_set()]
            for job in cancelled:
                self._pending.remove(job)
        for job in cancelled:  # `compute` sees the flag and returns `cancelled` without starting the op
            self._run_alone(job)

    def _run_alone(self, job: Job) -> None:
        self._answer(job, self._compute(job))


def _recording(job: Job, emit):
    """`emit` that also keeps the job's progress (its `started` and `step` events) for `status`."""

    def record(id_: int, op: str, body: dict[str, Any], tensors: dict[str, Any]) -> None:
        kind = body.get("event")
        if kind == "started":
            job.progress.update(step=body.get("start_step", 0), total_steps=body.get("total_steps"))
        elif kind == "step":
            job.progress.update(step=body.get("step"), loss=body.get("loss"))
        emit(id_, op, body, tensors)

    return record


def _describe(job: Job, state: str, now: float) -> dict[str, Any]:
    body = job.request.body
    return {"request_id": job.request.id, "op": job.request.op, "client": job.client, "state": state,
            "job_id": body.get("job_id"), "run_dir": body.get("run_dir"), "method": body.get("method"),
            "age_s": round(now - job.submitted, 3), **job.progress}

