"""Data-parallel training on torch.distributed: the worker group that torchrun starts (docs/distributed.md).

    python -m torch.distributed.run --standalone --nproc-per-node 2 \\
        -m softprompt_worker --distributed auto --endpoint ipc:///tmp/sp/worker.sock

Every process of the group runs this package with ``--distributed``. Rank 0 is the worker the SDK speaks
to: it binds the ROUTER, prints READY and serves as usual (``lead``). The other ranks, the followers,
never touch ZeroMQ: ``start`` keeps them in a loop that waits for rank 0 to hand over a job.

- Collective ops (``@collective``; today ``train``) run on every rank. Rank 0 broadcasts ``[op, body]``
  as MessagePack bytes in a uint8 tensor (no pickle anywhere), then each rank runs the same handler.
  Rows uploaded with ``data_append`` live in rank 0's memory, so they travel inline in that body; paths
  (model, data files, ``resume_from``) must name the same files on every node. Every other op
  (inference, prompts, uploads) runs on rank 0 alone.
- Two channels: a gloo *control* group carries jobs, agreements and the stop (idle followers wait on it,
  hence its long timeout); the default group (NCCL on GPUs, gloo on the CPU) carries DDP's gradient
  all-reduce and one all-reduce per log step.
- Agreements: when a rank has set its job up (model, data, method: what can fail on one node alone, like a
  missing file) it says so in an all_gather; a job that failed anywhere then ends on every rank, with the
  failing rank's error, and the group serves on. The ranks agree once more when training ends. A rank
  that fails between the two (say, out of memory on one GPU) leaves the others waiting in a collective
  until the process group's timeout, after which they fail too (with NCCL, the watchdog ends the group
  and the SDK restarts it).
- Events, the run directory and checkpoints come from rank 0 only: a follower runs each job with
  ``run_dir`` pointing at a scratch directory of its own, and returns before writing anything there.

Training semantics (``DataParallel``): ``training.batch_size`` is per rank, so one optimizer step sees
``batch_size x grad_accumulation x world_size`` rows. Rank r takes batches r, r+W, r+2W, ... of the
single-process batch stream (each rank collates the whole global batch and keeps its share, so shuffles
and sampled negatives stay those of one process). A run on W ranks therefore follows the single-process
run with ``grad_accumulation x W``: same rows, same order, same per-micro-batch loss, the same resumable
cursor (test/python/test_distributed.py measures how closely). DDP wraps a module that holds the
method, which holds the frozen model by reference, so only soft parameters are synchronised. Every rank
uses the same seed (as a resumed run restores rank 0's RNG state on all ranks). The loss of a ``step``
event is the mean over all ranks; it is all-reduced at log steps only, together with rank 0's cancel
flag, so under data parallelism a cancel takes effect at the next log step (``log_every``). Every rank
runs the evaluation (not sharded yet; rank 0 reports it).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, NoReturn

import msgpack
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from softprompt_worker.errors import ERROR_CLASSES, InternalError, InvalidArgumentError, WorkerError, from_exception
from softprompt_worker.logging_setup import FORMAT, OneLineFormatter
from softprompt_worker.ops.registry import Handler, OpContext, Reply, Request, WorkerState, get_op
from softprompt_worker.server import process_alive

if TYPE_CHECKING:
    from softprompt_worker.methods.base import SoftPromptMethod
    from softprompt_worker.server import Server

log = logging.getLogger("softprompt_worker.distributed")

BACKENDS = ("auto", "nccl", "gloo")
#: How long an idle follower waits for the next job on the control group.
CONTROL_TIMEOUT = timedelta(days=30)
STOP_WAIT_S = 30  # rank 0, stopping: how long a running job may take to reach its next log step
PARENT_GRACE_S = 15  # a follower whose parent died: how long rank 0 has to send the stop
_AGREE_BYTES = 4096  # one rank's part of an agreement: 4-byte length, then its error as MessagePack
_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

#: This process's group, once ``start`` joined it (one per process).
GROUP: Group | None = None


class Group:
    """This process's place in the worker group, and the control channel between the ranks."""

    def __init__(self, rank: int, world_size: int, local_rank: int, backend: str, control: Any) -> None:
        self.rank, self.world_size, self.local_rank, self.backend = rank, world_size, local_rank, backend
        self.control = control
        self.lock = threading.Lock()  # rank 0: one collective job, or the stop, at a time
        self.phase = "idle"  # of the current job: setup -> running | aborted, see run_job

    # -- jobs ---------------------------------------------------------------------------------------
    def send_job(self, op: str, body: dict[str, Any]) -> None:
        """Rank 0: hand ``op`` with ``body`` to every follower."""
        self._broadcast(msgpack.packb([op, body], use_bin_type=True))

    def send_stop(self) -> None:
        self._broadcast(msgpack.packb(None))

    def receive_job(self) -> tuple[str, dict[str, Any]] | None:
        """A follower: wait for the next job; None means stop."""
        job = msgpack.unpackb(self._broadcast(None), raw=False, strict_map_key=False)
        return None if job is None else (job[0], job[1])

    def _broadcast(self, payload: bytes | None) -> bytes:
        size = torch.tensor([len(payload) if payload is not None else 0], dtype=torch.int64)  # (1,)
        dist.broadcast(size, src=0, group=self.control)
        if payload is not None:
            data = torch.frombuffer(bytearray(payload), dtype=torch.uint8)  # (n,)
        else:
            data = torch.empty(int(size[0]), dtype=torch.uint8)
        dist.broadcast(data, src=0, group=self.control)
        return payload if payload is not None else data.numpy().tobytes()

    # -- agreements ---------------------------------------------------------------------------------
    def agree(self, error: BaseException | None) -> list[WorkerError]:
        """Every rank says whether it failed; returns the other ranks' errors (empty when none failed)."""
        mine = torch.zeros(_AGREE_BYTES, dtype=torch.uint8)  # (_AGREE_BYTES,)
        if error is not None:
            payload = _error_bytes(error)
            mine[:4] = torch.tensor(list(len(payload).to_bytes(4, "little")), dtype=torch.uint8)
            mine[4:4 + len(payload)] = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
        everyone = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(everyone, mine, group=self.control)
        failures = []
        for rank, part in enumerate(everyone):
            raw = part.numpy().tobytes()
            size = int.from_bytes(raw[:4], "little")
            if rank != self.rank and size:
                body = msgpack.unpackb(raw[4:4 + size], raw=False)
                cls = ERROR_CLASSES.get(body["code"], InternalError)
                failures.append(cls(f"rank {rank} of {self.world_size}: {body['message']}"))
        return failures

    def run_job(self, handler: Handler, req: Request, ctx: OpContext) -> Reply:
        """Run a collective handler on this rank, agreeing with the others as the module docstring says.
        The handler calls ``data_parallel`` once its setup is done (that is the first agreement)."""
        self.phase = "setup"
        failure: Exception | None = None
        reply = Reply()
        try:
            reply = handler(req, ctx)
        except Exception as exc:  # noqa: BLE001 - the other ranks must hear of it before it is raised
            failure = exc
        phase, self.phase = self.phase, "idle"
        if phase == "aborted":  # the setup agreement already told everyone
            raise failure or InternalError("collective job aborted without an error")
        others = self.agree(failure)  # "setup": ended before training; "running": training is over
        if failure is not None:
            raise failure
        if others and phase == "setup":
            raise others[0]
        for error in others:  # rank 0 finished every collective step, so its result stands
            log.warning("%s (after the last collective step; this rank's result stands)", error.message)
        return reply

    def close(self) -> None:
        try:
            dist.destroy_process_group()
        except Exception as exc:  # noqa: BLE001 - exiting anyway
            log.debug("destroy_process_group: %s", exc)


# -- joining, leading, following ------------------------------------------------------------------------

def start(backend: str, *, parent_pid: int | None = None) -> int | None:
    """Join the worker group torchrun started. Rank 0 gets None and goes on to serve the SDK (``lead``);
    a follower stays here for its whole life and gets its exit code (2 when it cannot join)."""
    global GROUP
    try:
        GROUP = _join(backend)
    except (ValueError, RuntimeError) as exc:
        log.error("--distributed: %s", exc)
        return 2
    if GROUP.rank == 0:
        log.info("rank 0 of %d (%s): serving; %d follower(s)", GROUP.world_size, GROUP.backend, GROUP.world_size - 1)
        return None
    return _follow(GROUP, parent_pid)


def lead(server: Server) -> NoReturn:
    """Rank 0: serve, then stop the followers (also when serving failed), then exit the process."""
    code = 1
    try:
        code = server.run()
    finally:
        _stop_followers()
    _exit(code)


def _exit(code: int) -> NoReturn:
    """Leave now: torchrun's agent (and so the SDK's close) waits for every rank's exit, and the
    interpreter's teardown with torch loaded takes seconds. Nothing is left to flush but logs and stdio."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _join(backend: str) -> Group:
    missing = [name for name in _TORCHRUN_ENV if name not in os.environ]
    if missing:
        raise ValueError(f"{', '.join(missing)} not set: start the worker group with torchrun "
                         "(python -m torch.distributed.run ... -m softprompt_worker --distributed)")
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    rank, world_size, local_rank = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    _tag_log_lines(rank, world_size)
    kwargs: dict[str, Any] = {}
    if backend == "nccl":
        if not torch.cuda.is_available() or local_rank >= torch.cuda.device_count():
            raise ValueError(f"backend nccl needs a GPU per process: local rank {local_rank}, "
                             f"{torch.cuda.device_count()} GPU(s) visible; use gloo on the CPU")
        torch.cuda.set_device(local_rank)  # device "auto"/"cuda" then means this rank's GPU
        kwargs["device_id"] = torch.device("cuda", local_rank)
    dist.init_process_group(backend, **kwargs)
    control = dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT)
    return Group(rank, world_size, local_rank, backend, control)


def _tag_log_lines(rank: int, world_size: int) -> None:
    """Name the rank in every log line (the SDK shows all ranks' stderr as one stream)."""
    formatter = OneLineFormatter(FORMAT.replace("%(name)s", f"%(name)s[rank{rank}/{world_size}]"))
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)


def _stop_followers() -> None:
    group = GROUP
    if group is None or group.world_size == 1:
        return
    if not group.lock.acquire(timeout=STOP_WAIT_S):
        log.error("a training job still runs on every rank after %d s: exiting, so torchrun ends the group",
                  STOP_WAIT_S)
        _exit(1)
    try:
        group.send_stop()
    except Exception as exc:  # noqa: BLE001 - followers already gone (torchrun stopped them): nothing to do
        log.info("followers not told to stop: %s", exc)
    group.close()


def _follow(group: Group, parent_pid: int | None) -> NoReturn:
    from softprompt_worker.ops import load_op_modules

    _stdout_to_stderr()
    if parent_pid:
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watcher", daemon=True).start()
    load_op_modules()
    state = WorkerState()
    log.info("following rank 0 (pid %d)", os.getpid())
    while True:
        try:
            job = group.receive_job()
        except Exception as exc:  # noqa: BLE001 - rank 0 ended without a stop: nothing left to follow
            log.error("rank 0 is unreachable (%s): exiting", exc)
            _exit(1)
        if job is None:
            break
        _follow_job(group, state, *job)
    log.info("stopped by rank 0")
    group.close()
    _exit(0)


def _follow_job(group: Group, state: WorkerState, op: str, body: dict[str, Any]) -> None:
    spec = get_op(op)
    scratch = tempfile.mkdtemp(prefix=f"softprompt-rank{group.rank}-")
    if "run_dir" in body:  # rank 0 alone writes the run directory
        body = {**body, "run_dir": scratch}
    ctx = OpContext(0, op, state, lambda *_: None)
    try:
        if spec is None:  # rank 0 runs another softprompt version: fail the job on every rank
            group.run_job(_unknown_op, Request(id=0, op=op, body=body), ctx)
        else:
            spec.handler(Request(id=0, op=op, body=body), ctx)
    except Exception as exc:  # noqa: BLE001 - rank 0 reports the job's error to its client
        log.info("job %s ended with %s: %s", op, type(exc).__name__, exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _unknown_op(req: Request, ctx: OpContext) -> Reply:
    raise InternalError(f"op {req.op!r} is not known on this rank: every node needs the same softprompt version")


def _stdout_to_stderr() -> None:
    try:
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    sys.stdout = sys.stderr


def _watch_parent(pid: int) -> None:
    """The SDK's process is the group's parent, not torchrun's agent. When it dies rank 0 notices (its
    own watcher) and sends the stop; this only ends a follower that rank 0 could not reach."""
    while process_alive(pid):
        time.sleep(1)
    log.warning("parent process %d is gone", pid)
    time.sleep(PARENT_GRACE_S)
    log.error("no stop from rank 0 %d s after the parent died: exiting", PARENT_GRACE_S)
    _exit(1)



# -- collective ops ---------------------------------------------------------------------------------------

def collective(handler: Handler) -> Handler:
    """Make an op run on every rank of the group (plain call in a single process). See the module docstring."""

    @functools.wraps(handler)
    def run(req: Request, ctx: OpContext) -> Reply:
        group = GROUP
        if group is None or group.world_size == 1:
            return handler(req, ctx)
        if group.rank > 0:
            return group.run_job(handler, req, ctx)
        body = _for_followers(req.body, ctx)  # may fail: nothing was sent yet
        with group.lock:
            group.send_job(req.op, body)
            return group.run_job(handler, req, ctx)

    return run


def _for_followers(body: dict[str, Any], ctx: OpContext) -> dict[str, Any]:
    """The body as followers get it: data sets uploaded to rank 0 (``{"dataset": id}``) as inline rows."""
    data = body.get("data")
    if not isinstance(data, dict):
        return body
    from softprompt_worker.ops.data import datasets

    inlined = dict(data)
    for key in ("train", "eval"):
        source = data.get(key)
        if isinstance(source, dict) and set(source) == {"dataset"} and isinstance(source["dataset"], str):
            inlined[key] = {"rows": datasets(ctx).rows(source["dataset"])}
    return {**body, "data": inlined}


def _error_bytes(error: BaseException) -> bytes:
    err = from_exception(error)
    message = err.message
    while True:
        payload = msgpack.packb({"code": err.code, "message": message}, use_bin_type=True)
        if len(payload) <= _AGREE_BYTES - 4:
            return payload
        message = message[: len(message) // 2] + " ..."


# -- training under DDP -----------------------------------------------------------------------------------

def data_parallel(ctx: OpContext, method: SoftPromptMethod, grad_accumulation: int) -> DataParallel | None:
    """Inside a collective op, once its setup is done: agree with the other ranks, then wrap ``method`` in
    DDP. None in a single process. Raises the first failing rank's error when some rank could not set up."""
    group = GROUP
    if group is None or group.world_size == 1:
        return None
    if group.phase != "setup":
        raise InternalError("data_parallel: called outside a collective op (or twice in one)")
    device = method.frozen.device
    if group.backend == "nccl" and device.type != "cuda":
        raise InvalidArgumentError(f"model.device: {str(device)!r} under the NCCL backend; leave the device at "
                                   "auto (each rank uses its GPU) or start the group with backend gloo")
    failures = group.agree(None)
    if failures:
        group.phase = "aborted"
        raise failures[0]
    group.phase = "running"
    return DataParallel(group, method, grad_accumulation)


class _TaskLoss(nn.Module):
    """What DDP wraps: the method (its soft parameters are the only parameters here) and the task's loss."""

    def __init__(self, method: SoftPromptMethod) -> None:
        super().__init__()
        self.method = method
        self.task: Any = None

    def forward(self, batch: Any) -> tuple[torch.Tensor, int]:
        return self.task.loss(batch)


class DataParallel:
    """One rank's side of a data-parallel training run; ``training.train`` calls it at three points:
    ``attach`` (the task's loss through DDP, this rank's share of the stream, the agreed cancel flag) and
    ``reduce_window`` at each log step."""

    def __init__(self, group: Group, method: SoftPromptMethod, grad_accumulation: int) -> None:
        self.rank, self.world_size = group.rank, group.world_size
        self._module = _TaskLoss(method)
        self._ddp = DistributedDataParallel(self._module)  # starts from rank 0's values; methods hold no buffers
        self._accumulation = grad_accumulation
        self._micro = 0
        self._local_cancelled: Callable[[], bool] = lambda: False
        self._cancelled = False

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def attach(self, task: Any, stream: Any, cancelled: Callable[[], bool]) -> tuple[Any, Any, Callable[[], bool]]:
        """``(task, stream, cancelled)`` as the loop should use them on this rank."""
        self._module.task = task
        self._local_cancelled = cancelled
        return _ParallelTask(task, self), ShardedStream(stream, self.rank, self.world_size), lambda: self._cancelled

    def loss(self, batch: Any) -> tuple[torch.Tensor, int]:
        self._micro += 1
        if self._micro % self._accumulation:  # not the step's last micro-batch: accumulate, no all-reduce
            with self._ddp.no_sync():
                return self._ddp(batch)
        return self._ddp(batch)

    def reduce_window(self, window_loss: torch.Tensor, window_tokens: int) -> tuple[torch.Tensor, int]:
        """At a log step: the loss sum over this window as the mean over ranks (in place), the tokens of all
        ranks, and rank 0's cancel flag for everyone. One all-reduce; the loop syncs here anyway."""
        flag = 1.0 if self.rank == 0 and self._local_cancelled() else 0.0
        pack = torch.tensor([0.0, float(window_tokens), flag], dtype=torch.float64, device=window_loss.device)  # (3,)
        pack[0] = window_loss.detach()
        dist.all_reduce(pack)
        loss_sum, tokens, cancel = pack.tolist()
        self._cancelled = cancel > 0
        window_loss.fill_(loss_sum / self.world_size)
        return window_loss, int(tokens)


class _ParallelTask:
    """The task as the loop sees it under DDP: ``loss`` goes through DistributedDataParallel."""

    def __init__(self, task: Any, parallel: DataParallel) -> None:
        self._task, self._parallel = task, parallel

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def loss(self, batch: Any) -> tuple[torch.Tensor, int]:
        return self._parallel.loss(batch)


class ShardedStream:
    """This rank's share of the single-process batch stream: batches rank, rank + W, rank + 2W, ...

    Each ``next`` draws W batches and keeps one, so every rank's underlying stream (and its cursor, which
    checkpoints save) stays where the single-process stream would be after the same global batches."""

    def __init__(self, stream: Any, rank: int, world_size: int) -> None:
        self.stream, self.rank, self.world_size = stream, rank, world_size

    def cursor(self) -> dict[str, int]:
        return self.stream.cursor()

    def seek(self, cursor: dict[str, int]) -> None:
        self.stream.seek(cursor)

    def __iter__(self) -> ShardedStream:
        return self

    def __next__(self) -> Any:
        mine = None
        for i in range(self.world_size):
            batch = next(self.stream)
            if i == self.rank:
                mine = batch
        return mine
