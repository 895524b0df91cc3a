"""Fused training: jobs on one frozen model share every forward and backward pass.

    group = FusedGroup(frozen, members=3, autocast=autocast, yield_turn=ctx.yield_turn)
    # on job i's own thread, with its own method, task and config:
    with group.joined(i):
        train(method, task, config, micro_step=group.micro_step(i, method, task), ...)

Each job runs its own ``train`` loop (optimizer, schedule, data order, evaluations, checkpoints, events),
on a thread of its own, but only one of them runs at a time: they pass a baton, like coroutines. A job that
reaches a micro-batch builds its *part* (its rows as an ``LMBatch`` and its prompt's ``Injection``) and
passes the baton on; the last job to arrive runs the round: one forward of every part's rows
(``injection.run_lm`` with each row's own injection), each job's loss from its own rows' logits, and one
backward of the sum of the losses (each divided by its job's accumulation). The jobs' soft parameters are
disjoint, so each job gets the gradient of its own loss and nothing else. Then the jobs take the baton in
order to step their optimizers, evaluate, checkpoint, and build their next parts.

Why each job's results equal the job trained alone: a row of a mixed batch sees what it would see alone
(``injection.pack_rows`` places each row's virtual tokens before its own tokens; other rows' prefixes are
masked; padding sits after a row's real tokens, which causal attention never reads); each job draws its
batches from its own seeded stream; and each job's random state (dropout in a reparameterising MLP, drawn
while its injection is built) is its own: set aside when it passes the baton, restored when the baton comes
back. What differs is the float rounding of a larger batch (tested: ``test_fused_training.py``).

A job that ends (done, cancelled, failed) leaves the group; the others go on fused among themselves. A round
whose forward or backward fails (the device ran out of memory) fails every job in it.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from softprompt_worker import random_state
from softprompt_worker.methods.injection import Injection, run_lm
from softprompt_worker.models.recompute import recomputed_layers
from softprompt_worker.tasks.lm_batching import IGNORE, LMBatch


@dataclass
class _Part:
    """One job's micro-batch in a round."""

    task: Any  # a task with ``lm_batch`` and ``loss_from_logits`` (generation, classification)
    batch: Any  # the task's collated batch
    lm: LMBatch  # its rows as the frozen model runs them
    injection: Injection  # the job's prompt, built from its current parameters
    accumulation: int  # the job's grad_accumulation: its loss is divided by it before backward


class FusedGroup:
    """Jobs ``0..members-1`` on ``frozen`` that train in shared passes (module docstring). Thread-safe."""

    def __init__(self, frozen, *, members: int, autocast: Any = None, gradient_checkpointing: bool = False,
                 yield_turn: Callable[[], None] | None = None) -> None:
        self.frozen = frozen
        self.autocast = autocast if autocast is not None else contextlib.nullcontext()
        self.gradient_checkpointing = gradient_checkpointing
        self.yield_turn = yield_turn or (lambda: None)
        self.rounds = 0  # shared forward/backward passes run (tests, bench)
        self._cond = threading.Condition()
        self._members: list[int] = list(range(members))  # still in the group, in baton order
        self._baton: int | None = self._members[0] if members else None
        self._parts: dict[int, _Part] = {}
        self._results: dict[int, tuple[torch.Tensor, int] | BaseException] = {}

    # -- what a member's thread calls ---------------------------------------------------------------------

    @contextlib.contextmanager
    def joined(self, member: int) -> Iterator[None]:
        """Run the body as ``member``: wait for the baton first; leave the group at the end, however it ends."""
        with self._cond:
            self._wait_for_baton(member)
        try:
            yield
        finally:
            self._leave(member)

    def micro_step(self, member: int, method, task) -> Callable[[Any, int], tuple[torch.Tensor, int]]:
        """The ``train(..., micro_step=)`` of ``member``: its micro-batch joins the round."""

        def step(batch: Any, accumulation: int) -> tuple[torch.Tensor, int]:
            with self.autocast:  # as the job alone builds it: inside its forward, under autocast
                injection = method.injection()
            self._submit(member, _Part(task, batch, task.lm_batch(batch), injection, accumulation))
            result = self._results.pop(member)
            if isinstance(result, BaseException):
                raise result
            return result

        return step

    # -- the baton ----------------------------------------------------------------------------------------

    def _submit(self, member: int, part: _Part) -> None:
        """Put ``member``'s part in the round; run the round when it is the last to arrive; wait for its result
        and the baton."""
        with self._cond:
            self._parts[member] = part
            runs_round = not self._hand_on()
        if runs_round:
            self._run_round()
        with self._cond:
            self._wait_for_baton(member, result=True)

    def _hand_on(self) -> bool:  # under self._cond, by the baton's holder
        """Pass the baton to the next member that has not joined this round; False when there is none."""
        waiting = [m for m in self._members if m not in self._parts]
        if not waiting:
            return False
        self._baton = waiting[0]
        self._cond.notify_all()
        return True

    def _wait_for_baton(self, member: int, *, result: bool = False) -> None:  # under self._cond
        """Wait until ``member`` holds the baton (and, with ``result``, has its round's result); its random
        state is kept across what the others run meanwhile."""
        if self._baton == member and (not result or member in self._results):
            return
        saved = random_state.capture()
        while self._baton != member or (result and member not in self._results):
            self._cond.wait()
        random_state.restore(saved)

    def _leave(self, member: int) -> None:
        with self._cond:
            self._members.remove(member)
            self._parts.pop(member, None)
            self._results.pop(member, None)
            if self._baton != member:  # pragma: no cover - a member only leaves while it runs
                return
            if self._hand_on():
                return
            if not self._parts:  # the group is empty, or every other member waits for a new round
                self._baton = self._members[0] if self._members else None
                self._cond.notify_all()
                return
        self._run_round()  # the others all joined this round: the leaver runs it for them

    # -- a round ------------------------------------------------------------------------------------------

    def _run_round(self) -> None:
        """One forward and backward of every waiting part, by the baton's holder; then the baton goes to the
        first member."""
        with self._cond:
            parts = sorted(self._parts.items())
        try:
            self.yield_turn()  # the device is the scheduler's: waiting inference runs between rounds
            results = self._forward_backward(parts)
        except Exception as exc:  # noqa: BLE001 - each member raises it on its own thread
            results = {member: exc for member, _ in parts}
        with self._cond:
            self._results.update(results)
            self._parts.clear()
            self.rounds += 1
            self._baton = self._members[0] if self._members else None
            self._cond.notify_all()

    def _forward_backward(self, parts: list[tuple[int, _Part]]) -> dict[int, tuple[torch.Tensor, int] | BaseException]:
        """Each member's (detached loss, tokens), or the error of its own loss (that member alone fails)."""
        lm = [part.lm for _, part in parts]
        rows = [part.injection for _, part in parts for _ in range(part.lm.input_ids.shape[0])]
        input_ids = _stack([b.input_ids for b in lm], 0)  # (sum B, T)
        mask = _stack([b.attention_mask for b in lm], 0)  # (sum B, T)
        labels = _stack([b.labels for b in lm], IGNORE)  # (sum B, T) or enc-dec (sum B, T_dec)
        model = self.frozen.model
        decoder_input_ids = (model.prepare_decoder_input_ids_from_labels(labels=labels)
                             if self.frozen.is_encoder_decoder else None)  # as run_lm derives it alone
        results: dict[int, tuple[torch.Tensor, int] | BaseException] = {}
        total = None
        with self.autocast, recomputed_layers(model, self.gradient_checkpointing):
            logits = run_lm(self.frozen, rows, input_ids, mask, decoder_input_ids=decoder_input_ids,
                            right_padded=True).logits  # (sum B, T or T_dec, V)
            start = 0
            for member, part in parts:
                n, width = part.lm.labels.shape
                try:
                    loss = part.task.loss_from_logits(part.batch, logits[start:start + n, :width])  # ()
                except Exception as exc:  # noqa: BLE001 - this member's own failure
                    results[member] = exc
                else:
                    results[member] = (loss.detach(), part.lm.n_tokens)
                    total = loss / part.accumulation if total is None else total + loss / part.accumulation
                start += n
        del logits
        if total is not None:
            total.backward()
        return results


def _stack(tensors: list[torch.Tensor], pad: int) -> torch.Tensor:
    """Right-pad each ``(B_i, T_i)`` to the widest and concatenate: ``(sum B_i, max T_i)``."""
    width = max(t.shape[1] for t in tensors)
    return torch.cat([F.pad(t, (0, width - t.shape[1]), value=pad) for t in tensors], dim=0)
