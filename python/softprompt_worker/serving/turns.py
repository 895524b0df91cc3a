"""Whose turn it is on the device: one op computes at a time, and nobody waits for long.

The frozen model and the device are shared by every op, so ops take turns rather than run side by side
(on a GPU, two ops at once would only contend for the same cores; on the CPU, for the same threads).
What a turn is:

- the **inference lane** (``scheduler.py``) takes a turn to run the inference ops queued at that moment;
- a **training job** takes a turn per micro-batch: at each ``yield_turn`` it hands the device over when
  someone waits, and queues for its next turn behind them.

Who goes next when the device is handed over: waiting inference first, unless the turn just ended was
inference's and a training job waits (then that job goes, so a stream of inference cannot starve
training); training jobs go round-robin. So an inference call made during training waits at most one
micro-batch of each running job, and N jobs share the device in equal micro-batches.

A training job's random state (torch's global generators: dropout, sampling) is put aside while others
use the device and restored when its turn comes back, so what ran meanwhile cannot change its results.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from softprompt_worker import random_state


class Turn:
    """One claimant of the device: the inference lane, or one training job."""

    __slots__ = ("name", "inference", "_random_state")

    def __init__(self, name: str, *, inference: bool) -> None:
        self.name = name
        self.inference = inference
        self._random_state: Any = None


class DeviceTurns:
    """The device, handed from one `Turn` to the next (policy: the module docstring). Thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._holder: Turn | None = None
        self._inference: deque[Turn] = deque()
        self._training: deque[Turn] = deque()
        self._last_was_inference = False
        self.handovers = 0  # turns handed to someone else at a yield (status, tests)

    def take(self, turn: Turn) -> None:
        """Wait for `turn`'s turn."""
        with self._cond:
            (self._inference if turn.inference else self._training).append(turn)
            self._grant()
            while self._holder is not turn:
                self._cond.wait()

    def give_back(self, turn: Turn) -> None:
        """End `turn`'s turn; the next waiter (if any) gets the device."""
        with self._cond:
            if self._holder is not turn:
                raise RuntimeError(f"{turn.name} gave back a turn it does not hold")
            self._holder = None
            self._grant()

    def others_wait(self) -> bool:
        """Whether anyone waits for the device (lock-free: a stale answer only delays a handover one step)."""
        return bool(self._inference) or bool(self._training)

    def yield_turn(self, turn: Turn) -> None:
        """Hand the device over when someone waits, and come back after them; quick when nobody does."""
        if not self.others_wait():
            return
        turn._random_state = random_state.capture()
        self.give_back(turn)
        self.take(turn)
        random_state.restore(turn._random_state)
        turn._random_state = None
        self.handovers += 1

    def waiting(self) -> dict[str, int]:
        with self._cond:
            return {"inference": len(self._inference), "training": len(self._training)}

    def holder(self) -> str | None:
        holder = self._holder
        return holder.name if holder is not None else None

    def _grant(self) -> None:  # under self._cond
        if self._holder is not None:
            return
        if self._training and (self._last_was_inference or not self._inference):
            self._holder, self._last_was_inference = self._training.popleft(), False
        elif self._inference:
            self._holder, self._last_was_inference = self._inference.popleft(), True
        else:
            return
        self._cond.notify_all()
