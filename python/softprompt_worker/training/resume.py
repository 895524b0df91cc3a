"""Resumable training state: the data stream with its cursor, and optimizer + RNG state as plain data.

``capture_state`` turns the loop's state into a ``TrainingState`` (named tensors + JSON, no pickle)
that checkpoints.py stores in ``Checkpoint.training_state``/``training_state_json``; ``restore_state``
puts it back. Together with the per-epoch seeded shuffle of ``DataStream`` this makes a resumed run
follow the uninterrupted trajectory exactly (on the CPU; CUDA kernels may differ in the last bits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from softprompt_worker.errors import CheckpointInvalidError, InvalidArgumentError
from softprompt_worker.tasks.base import Task


@dataclass
class TrainingState:
    """What a checkpoint keeps to resume: named tensors (optimizer moments, RNG states) and JSON
    (step, data cursor, optimizer param groups, the config). No pickle: both halves are plain data."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


class DataStream:
    """Training batches as one endless stream across epochs, with a resumable cursor.

    Epoch ``e`` is shuffled by a CPU generator seeded with ``(seed, e)``; ``cursor()`` is
    ``{"epoch": e, "batch": b}``, the next batch to draw. Seeking re-collates the skipped batches of the
    epoch (cheap next to a training step, and it keeps tasks free of resume logic).
    """

    def __init__(self, task: Task, batch_size: int, seed: int) -> None:
        self.task, self.batch_size, self.seed = task, batch_size, seed
        self.epoch, self.batch = 0, 0
        self._it: Iterator[Any] | None = None

    def cursor(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch}

    def seek(self, cursor: dict[str, int]) -> None:
        self.epoch, self.batch, self._it = int(cursor["epoch"]), int(cursor["batch"]), None

    def __iter__(self) -> "DataStream":
        return self

    def __next__(self) -> Any:
        if self._it is None:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._it = iter(self.task.batches(self.batch_size, generator))
            for _ in range(self.batch):
                next(self._it)
        try:
            batch = next(self._it)
        except StopIteration:
            self.epoch, self.batch, self._it = self.epoch + 1, 0, None
            return next(self)
        self.batch += 1
        return batch


def capture_state(optimizer, *, step: int, cursor: dict[str, int], tokens: int, config: dict[str, Any],
                  device: torch.device) -> TrainingState:
    """Optimizer state, RNG state, step and data cursor as named tensors + JSON."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, slots in sd["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value.detach().to("cpu").clone()
            else:
                scalars.setdefault(str(index), {})[key] = value
    tensors["rng.cpu"] = torch.get_rng_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    meta = {"step": step, "cursor": dict(cursor), "tokens": tokens, "config": config,
            "optimizer": {"name": config["optimizer"], "param_groups": sd["param_groups"], "scalars": scalars}}
    return TrainingState(tensors=tensors, meta=meta)


_MUST_MATCH = ("optimizer", "batch_size", "grad_accumulation", "seed")


def restore_state(state: TrainingState, config, optimizer, stream: DataStream, device) -> tuple[int, int]:
    """Put a captured state back into ``optimizer``, the RNGs and ``stream``; returns ``(step, tokens)``.

    The settings that give the step and cursor their meaning (optimizer, batch size, accumulation, seed)
    must equal the checkpoint's; ``steps``, ``lr`` and the rest may change (e.g. to train longer).
    """
    try:
        return _restore(state, config, optimizer, stream, device)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointInvalidError(f"training state does not fit this method and optimizer: {exc}") from exc


def _restore(state: TrainingState, config, optimizer, stream: DataStream, device) -> tuple[int, int]:
    saved = state.meta.get("config", {})
    for name in _MUST_MATCH:
        if name in saved and saved[name] != getattr(config, name):
            raise InvalidArgumentError(f"training.{name}: resuming needs the checkpoint's value {saved[name]!r}, "
                                       f"got {getattr(config, name)!r}")
    opt_meta = state.meta["optimizer"]
    slots: dict[int, dict[str, Any]] = {}
    for name, tensor in state.tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            slots.setdefault(int(index), {})[key] = tensor
    for index, values in opt_meta.get("scalars", {}).items():
        slots.setdefault(int(index), {}).update(values)
    groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
              for g in opt_meta["param_groups"]]
    optimizer.load_state_dict({"state": slots, "param_groups": groups})
    torch.set_rng_state(state.tensors["rng.cpu"])
    if device.type == "cuda" and "rng.cuda" in state.tensors:
        torch.cuda.set_rng_state(state.tensors["rng.cuda"], device)
    stream.seek(state.meta["cursor"])
    return int(state.meta["step"]), int(state.meta.get("tokens", 0))
