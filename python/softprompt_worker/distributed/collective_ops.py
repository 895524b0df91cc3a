"""Collective ops: ``@collective`` makes an op run on every rank, rank 0 handing the job to the followers."""

from __future__ import annotations

import functools
from typing import Any

from softprompt_worker.data import dataset_store
from softprompt_worker.distributed.group import current_group
from softprompt_worker.serving.handlers import Handler, OpContext, Reply, Request


def collective(handler: Handler) -> Handler:
    """Make an op run on every rank of the group (plain call in a single process). See the package docstring."""

    @functools.wraps(handler)
    def run(req: Request, ctx: OpContext) -> Reply:
        group = current_group()
        if group is None or group.world_size == 1:
            return handler(req, ctx)
        if group.rank > 0:
            return group.run_job(handler, req, ctx)
        body = _for_followers(req.body, ctx)  # may fail: nothing was sent yet
        with group.lock:
            group.send_job(req.op, body)
            return group.run_job(handler, req, ctx)

    return run


def _for_followers(body: dict[str, Any], ctx: OpContext) -> dict[str, Any]:
    """The body as followers get it: data sets uploaded to rank 0 (``{"dataset": id}``) as inline rows."""
    data = body.get("data")
    if not isinstance(data, dict):
        return body
    inlined = dict(data)
    for key in ("train", "eval"):
        source = data.get(key)
        if isinstance(source, dict) and set(source) == {"dataset"} and isinstance(source["dataset"], str):
            inlined[key] = {"rows": dataset_store(ctx.state).rows(source["dataset"])}
    return {**body, "data": inlined}
