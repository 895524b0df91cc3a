"""Data-parallel training: one rank's side of a run (``data_parallel`` -> ``DataParallel``), and this rank's
share of the batch stream (``ShardedStream``). Semantics: the package docstring."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.distributed as dist

from softprompt_worker.distributed.group import Group, current_group
from softprompt_worker.errors import InternalError, InvalidArgumentError
from softprompt_worker.serving.handlers import OpContext

if TYPE_CHECKING:
    from softprompt_worker.methods.base import SoftPromptMethod


def data_parallel(ctx: OpContext, method: SoftPromptMethod) -> DataParallel | None:
    """Inside a collective op, once its setup is done: agree with the other ranks, then replicate ``method``'s
    soft parameters from rank 0. None in a single process. Raises the first failing rank's error when some rank could not set up."""
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
    return DataParallel(group, method)


class DataParallel:
    """One rank's side of a data-parallel training run; ``training.train`` calls it at four points:
    ``attach`` (this rank's share of the stream, the agreed cancel flag), ``reduce_gradients`` once per
    optimizer step after the last backward, ``reduce_window`` at each log step and ``leader_says`` at an
    evaluation (rank 0's early-stopping decision).

    The soft parameters are replicated and their gradients averaged over the ranks with one flat
    all-reduce per optimizer step, after every micro-batch's backward has finished. Not DDP's reducer:
    it all-reduces each parameter the first time its gradient is accumulated during a backward, so a
    loss that reaches the parameters in several nested backward passes (GradCache's replay) left every
    rank with its own prompt. Soft parameters are small (kilobytes to megabytes), so overlapping the
    all-reduce with the backward would gain nothing measurable; one reduction at the step boundary is
    correct for every loss and serves a sharded frozen model the same way.
    """

    def __init__(self, group: Group, method: SoftPromptMethod) -> None:
        self.rank, self.world_size = group.rank, group.world_size
        self._params = [p for p in method.parameters() if p.requires_grad]
        for p in self._params:  # every rank starts from rank 0's values (methods hold no buffers)
            dist.broadcast(p.data, src=0)
        self._local_cancelled: Callable[[], bool] = lambda: False
        self._cancelled = False

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def attach(self, task: Any, stream: Any, cancelled: Callable[[], bool]) -> tuple[Any, Any, Callable[[], bool]]:
        """``(task, stream, cancelled)`` as the loop should use them on this rank."""
        self._local_cancelled = cancelled
        return task, ShardedStream(stream, self.rank, self.world_size), lambda: self._cancelled

    def reduce_gradients(self) -> None:
        """Average the soft gradients over the ranks, in place: one all-reduce of one flat buffer, on the
        device, no host sync. Each rank divides by W before the sum, as DDP does, so with W = 2 a rank's
        gradient g_r becomes g_0/2 + g_1/2: exactly what one process accumulating both micro-batches with
        ``loss / 2`` holds (halving is exact)."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self._params]
        flat = torch.cat([g.reshape(-1) for g in grads]) / self.world_size  # (total soft parameters,)
        dist.all_reduce(flat)
        offset = 0
        for p, g in zip(self._params, grads):
            p.grad = flat[offset:offset + g.numel()].view_as(g)  # (p.shape)
            offset += g.numel()

    def leader_says(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (early stopping): one broadcast at an evaluation step."""
        pack = torch.tensor([1.0 if flag else 0.0], dtype=torch.float64, device=self._params[0].device)  # (1,)
        dist.broadcast(pack, src=0)
        return bool(pack.item())

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
