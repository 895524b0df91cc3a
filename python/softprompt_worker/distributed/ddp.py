"""Training under DDP: one rank's side of a data-parallel run (``data_parallel`` -> ``DataParallel``), and
this rank's share of the batch stream (``ShardedStream``). Semantics: the package docstring."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from softprompt_worker.distributed.group import Group, current_group
from softprompt_worker.errors import InternalError, InvalidArgumentError
from softprompt_worker.ops.registry import OpContext

if TYPE_CHECKING:
    from softprompt_worker.methods.base import SoftPromptMethod


def data_parallel(ctx: OpContext, method: SoftPromptMethod, grad_accumulation: int) -> DataParallel | None:
    """Inside a collective op, once its setup is done: agree with the other ranks, then wrap ``method`` in
    DDP. None in a single process. Raises the first failing rank's error when some rank could not set up."""
    group = current_group()
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
