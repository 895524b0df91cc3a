"""Evaluation metrics: retrieval and STS over embeddings (``retrieval``), reranking (``reranking``)."""

from softprompt_worker.evaluation.retrieval import metrics_from_rankings, retrieval_metrics, search, spearman, sts_spearman

__all__ = ["metrics_from_rankings", "retrieval_metrics", "search", "spearman", "sts_spearman"]
