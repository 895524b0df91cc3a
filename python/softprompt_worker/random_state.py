"""torch's global random state, set aside and put back: what keeps a job's random stream its own while
other work runs on the same process (serving/turns.py between turns, training/fused.py between rounds)."""

from __future__ import annotations

from typing import Any

RandomState = tuple[Any, Any]


def capture() -> RandomState:
    """torch's global CPU generator and the current CUDA device's (when CUDA is in use). No device sync:
    a CUDA generator's state is its seed and offset, kept on the host."""
    import torch

    cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda


def restore(saved: RandomState) -> None:
    import torch

    cpu, cuda = saved
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda)
