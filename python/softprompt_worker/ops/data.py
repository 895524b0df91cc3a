"""Training rows sent by the client in chunks (see data.py), referenced by ``train`` as ``{"dataset": id}``:
``data_open``, ``data_append`` (the reply counts the rows held so far), ``data_close``. The bodies are
declared once in ``ops/data_bodies.py``, exported to ``proto/schema/`` and the SDK (docs/schema.md).
"""

from __future__ import annotations

from softprompt_worker.data import DatasetStore, dataset_store
from softprompt_worker.fields import parse, to_body
from softprompt_worker.ops.data_bodies import (DataAppendReply, DataAppendRequest, DataCloseReply, DataCloseRequest,
                                                DataOpenReply, DataOpenRequest)
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op


def datasets(ctx: OpContext) -> DatasetStore:
    """The worker's dataset store (one per worker process)."""
    return dataset_store(ctx.state)


@op("data_open")
def data_open(req: Request, ctx: OpContext) -> Reply:
    body = parse(DataOpenRequest, req.body)
    return Reply(body=to_body(DataOpenReply(dataset=datasets(ctx).open(body.dataset))))


@op("data_append")
def data_append(req: Request, ctx: OpContext) -> Reply:
    body = parse(DataAppendRequest, req.body)
    return Reply(body=to_body(DataAppendReply(count=datasets(ctx).append(body.dataset, body.rows))))


@op("data_close")
def data_close(req: Request, ctx: OpContext) -> Reply:
    body = parse(DataCloseRequest, req.body)
    return Reply(body=to_body(DataCloseReply(closed=datasets(ctx).close(body.dataset))))
