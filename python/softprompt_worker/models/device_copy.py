"""Host values onto the device without making the host wait for it.

``torch.tensor(values, device="cuda")`` copies from pageable memory with a stream synchronisation: the
host waits for every kernel queued before it (``torch.cuda.set_sync_debug_mode`` reports it). On the hot
path small per-batch vectors (virtual-token counts, position offsets, constant token ids) go through
``to_device`` instead: a fill when every value is the same, else a copy from pinned memory that the
stream orders after the queued work, with no host wait.
"""

from __future__ import annotations

from typing import Sequence

import torch


def to_device(values: Sequence[int], device: torch.device, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """``(len(values),)`` on ``device``, without a host sync."""
    if len(set(values)) == 1:
        return torch.full((len(values),), values[0], dtype=dtype, device=device)
    host = torch.tensor(list(values), dtype=dtype)
    return (host.pin_memory() if device.type == "cuda" else host).to(device, non_blocking=True)
