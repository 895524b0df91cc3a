"""The request and reply bodies of ops ``data_open``, ``data_append`` and ``data_close`` (``ops/data.py``),
declared once: the worker parses requests with them (``fields.parse``) and builds replies from them, and
``make schema`` exports them to JSON Schema and the SDK's zod schemas and types (docs/schema.md). The rows
themselves are the task's (each task validates its rows when the job reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from softprompt_worker.fields import option

DATASET_ID = {"non_empty": "expected a dataset id"}


@dataclass
class DataOpenRequest:
    """Op ``data_open``: start a dataset, referenced by ``train`` as ``{"dataset": id}``."""

    dataset: str | None = option(None, non_empty=True, doc="its id; default: a fresh one")


@dataclass
class DataOpenReply:
    """Op ``data_open``'s reply."""

    dataset: str = option(doc="the dataset's id")


@dataclass
class DataCloseRequest:
    """Op ``data_close``: free a dataset's rows."""

    dataset: str = option(non_empty=True, errors=DATASET_ID, doc="the dataset's id")


@dataclass(kw_only=True)
class DataAppendRequest(DataCloseRequest):
    """Op ``data_append``: add rows to an open dataset."""

    rows: list[dict[str, Any]] = option(doc="training rows, as the job's task reads them")


@dataclass
class DataAppendReply:
    """Op ``data_append``'s reply."""

    count: int = option(ge=0, doc="rows held so far")


@dataclass
class DataCloseReply:
    """Op ``data_close``'s reply."""

    closed: bool = option(doc="whether it was open")


BODIES = {"data_open_request": DataOpenRequest, "data_open_reply": DataOpenReply,
          "data_append_request": DataAppendRequest, "data_append_reply": DataAppendReply,
          "data_close_request": DataCloseRequest, "data_close_reply": DataCloseReply}
