"""Soft-prompt methods: one module per method, one interface (``base.SoftPromptMethod``)."""
