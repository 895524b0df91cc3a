"""Reading checkpoints without loading a method: op ``checkpoint_inspect``.

The bodies are declared once in ``ops/checkpoint_bodies.py`` (``CheckpointInspectRequest`` ->
``CheckpointInfo``, whose ``compatible`` says whether the checkpoint fits ``model``, when one is given),
exported to ``proto/schema/`` and the SDK (docs/schema.md). The content hash is verified (a corrupt file is
``checkpoint_invalid``).
"""

from __future__ import annotations

from softprompt_worker.fields import build, parse, to_body
from softprompt_worker.ops.checkpoint_bodies import CheckpointInfo, CheckpointInspectRequest
from softprompt_worker.training.checkpoints import load_checkpoint
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op


@op("checkpoint_inspect")
def checkpoint_inspect(req: Request, ctx: OpContext) -> Reply:
    body = parse(CheckpointInspectRequest, req.body)
    record = load_checkpoint(body.path)
    info = build(CheckpointInfo, record.describe())
    if body.model is not None:
        from softprompt_worker.models import ModelSpec
        from softprompt_worker.models.cache import get_frozen_model

        frozen = get_frozen_model(ctx.state, ModelSpec.from_dict(body.model))
        info.compatible = frozen.fingerprint == record.base_model["fingerprint"]
    return Reply(body=to_body(info))
