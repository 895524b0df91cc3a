"""Evaluation metrics over embeddings (retrieval: nDCG/Recall/MRR@k; STS: Spearman)."""

from .retrieval import metrics_from_rankings, retrieval_metrics, search, spearman, sts_spearman

__all__ = ["metrics_from_rankings", "retrieval_metrics", "search", "spearman", "sts_spearman"]
