"""Training losses: one loss per module, sentence-transformers style (math split from the embedding step)."""

from softprompt_worker.losses.grad_cache import CachedInfoNCELoss
from softprompt_worker.losses.info_nce import InfoNCELoss

__all__ = ["CachedInfoNCELoss", "InfoNCELoss"]
