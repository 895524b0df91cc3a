"""Training losses: one loss per module, sentence-transformers style (math split from the embedding step)."""

from .grad_cache import CachedInfoNCELoss
from .info_nce import InfoNCELoss

__all__ = ["CachedInfoNCELoss", "InfoNCELoss"]
