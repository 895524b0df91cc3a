"""Serving trained prompts: generation and classification (``generation``), query-likelihood scoring
(``scoring``), and the loaded-prompt cache that every inference op resolves prompts through (``prompts``)."""
