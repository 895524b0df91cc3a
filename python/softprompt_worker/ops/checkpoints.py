"""Reading checkpoints without loading a method.

    checkpoint_inspect {"path": str, "model"?: ModelSpec}
        -> {"path", "method", "method_config", "base_model", "step", "metrics", "versions",
            "created_unix_ms", "content_sha256", "resumable", "tensors": {name: {"dtype", "shape"}},
            "compatible"?: bool}        (compatible: the checkpoint fits ``model``, when one is given)

The content hash is verified (a corrupt file is ``checkpoint_invalid``).
"""

from __future__ import annotations

from softprompt_worker.training.checkpoints import load_checkpoint
from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op


@op("checkpoint_inspect")
def checkpoint_inspect(req: Request, ctx: OpContext) -> Reply:
    path = req.body.get("path")
    if not isinstance(path, str) or not path:
        raise InvalidArgumentError(f"path: expected a checkpoint file path, got {path!r:.60}")
    record = load_checkpoint(path)
    body = record.describe()
    if req.body.get("model") is not None:
        from softprompt_worker.models import ModelSpec
        from softprompt_worker.models.cache import get_frozen_model

        frozen = get_frozen_model(ctx.state, ModelSpec.from_dict(req.body["model"]))
        body["compatible"] = frozen.fingerprint == record.base_model["fingerprint"]
    return Reply(body=body)
