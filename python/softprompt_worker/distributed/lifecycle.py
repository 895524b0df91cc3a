"""Joining, leading, following: how each process of the torchrun group joins it (``start``), how rank 0
serves and then stops the followers (``lead``), and the followers' loop that runs rank 0's jobs."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, NoReturn

import torch
import torch.distributed as dist

from softprompt_worker.distributed.group import Group, current_group, set_current_group
from softprompt_worker.errors import InternalError
from softprompt_worker.serving.logging_setup import FORMAT, OneLineFormatter
from softprompt_worker.serving.handlers import OpContext, Reply, Request, WorkerState, get_op
from softprompt_worker.serving.process import process_alive

if TYPE_CHECKING:
    from softprompt_worker.serving.server import Server

log = logging.getLogger("softprompt_worker.distributed")

BACKENDS = ("auto", "nccl", "gloo")
#: How long an idle follower waits for the next job on the control group.
CONTROL_TIMEOUT = timedelta(days=30)
STOP_WAIT_S = 30  # rank 0, stopping: how long a running job may take to reach its next log step
PARENT_GRACE_S = 15  # a follower whose parent died: how long rank 0 has to send the stop
_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def start(backend: str, *, load_ops: Callable[[], object], parent_pid: int | None = None) -> int | None:
    """Join the worker group torchrun started. Rank 0 gets None and goes on to serve the SDK (``lead``);
    a follower stays here for its whole life and gets its exit code (2 when it cannot join).

    ``load_ops`` registers the op handlers a follower runs (``ops.load_op_modules``): passed in by the
    entry point, since this package sits below ``ops`` and never imports it."""
    try:
        group = _join(backend)
    except (ValueError, RuntimeError) as exc:
        log.error("--distributed: %s", exc)
        return 2
    set_current_group(group)
    if group.rank == 0:
        log.info("rank 0 of %d (%s): serving; %d follower(s)", group.world_size, group.backend, group.world_size - 1)
        return None
    return _follow(group, parent_pid, load_ops)


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
    group = current_group()
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


def _follow(group: Group, parent_pid: int | None, load_ops: Callable[[], object]) -> NoReturn:
    _stdout_to_stderr()
    if parent_pid:
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watcher", daemon=True).start()
    load_ops()
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
