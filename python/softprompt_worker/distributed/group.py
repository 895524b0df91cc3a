"""A rank's place in the worker group: the control channel between the ranks, the agreements, one
collective job's run on this rank, and the group this process joined (set once by ``lifecycle.start``)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import msgpack
import torch
import torch.distributed as dist

from softprompt_worker.errors import ERROR_CLASSES, InternalError, WorkerError, from_exception
from softprompt_worker.serving.handlers import Handler, OpContext, Reply, Request

log = logging.getLogger("softprompt_worker.distributed")

_AGREE_BYTES = 4096  # one rank's part of an agreement: 4-byte length, then its error as MessagePack

#: This process's group, once ``start`` joined it (one per process).
_GROUP: Group | None = None


def current_group() -> Group | None:
    """The group this process joined; None in a single process (or before ``start``)."""
    return _GROUP


def set_current_group(group: Group) -> None:
    global _GROUP
    _GROUP = group


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
        """Run a collective handler on this rank, agreeing with the others as the package docstring says.
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


def _error_bytes(error: BaseException) -> bytes:
    """``error`` as MessagePack that fits one rank's part of an agreement (the message shortened if need be)."""
    err = from_exception(error)
    message = err.message
    while True:
        payload = msgpack.packb({"code": err.code, "message": message}, use_bin_type=True)
        if len(payload) <= _AGREE_BYTES - 4:
            return payload
        message = message[: len(message) // 2] + " ..."
