"""Training rows sent by the client in chunks (see data.py), referenced by ``train`` as ``{"dataset": id}``.

    data_open   {"dataset"?: str}                  -> {"dataset": str}
    data_append {"dataset": str, "rows": [object]} -> {"count": int}   (rows held so far)
    data_close  {"dataset": str}                   -> {"closed": bool}
"""

from __future__ import annotations

from softprompt_worker.data import DatasetStore, dataset_store
from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op


def datasets(ctx: OpContext) -> DatasetStore:
    """The worker's dataset store (one per worker process)."""
    return dataset_store(ctx.state)


def _dataset_id(body: dict) -> str:
    dataset = body.get("dataset")
    if not isinstance(dataset, str) or not dataset:
        raise InvalidArgumentError(f"dataset: expected a dataset id, got {dataset!r:.40}")
    return dataset


@op("data_open")
def data_open(req: Request, ctx: OpContext) -> Reply:
    return Reply(body={"dataset": datasets(ctx).open(req.body.get("dataset"))})


@op("data_append")
def data_append(req: Request, ctx: OpContext) -> Reply:
    return Reply(body={"count": datasets(ctx).append(_dataset_id(req.body), req.body.get("rows"))})


@op("data_close")
def data_close(req: Request, ctx: OpContext) -> Reply:
    return Reply(body={"closed": datasets(ctx).close(_dataset_id(req.body))})
