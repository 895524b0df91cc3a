"""Ops ``checkpoint_export_peft`` and ``checkpoint_import_peft``: PEFT adapters in and out (``peft_io``).

The bodies are declared once in ``ops/checkpoint_bodies.py`` (``CheckpointExportPeftRequest`` ->
``CheckpointExportPeftReply``, ``CheckpointImportPeftRequest`` -> ``CheckpointImportPeftReply``), exported to
``proto/schema/`` and the SDK (docs/schema.md).

Prompt tuning (any model) and decoder-only prefix tuning; anything PEFT cannot represent (our
encoder-decoder prefixes) or we cannot (PEFT decoder prompts) is an ``invalid_argument`` error.
"""

from __future__ import annotations

from softprompt_worker.fields import parse, to_body
from softprompt_worker.models import ModelSpec
from softprompt_worker.ops.checkpoint_bodies import (CheckpointExportPeftReply, CheckpointExportPeftRequest,
                                                      CheckpointImportPeftReply, CheckpointImportPeftRequest)
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op


@op("checkpoint_export_peft")
def checkpoint_export_peft(req: Request, ctx: OpContext) -> Reply:
    from softprompt_worker.training.checkpoints import build_method_from_checkpoint, load_checkpoint
    from softprompt_worker.peft_io import CONFIG_FILE, WEIGHTS_FILE, export_peft
    from softprompt_worker.inference.prompts import spec_for_checkpoint
    from softprompt_worker.models.cache import get_frozen_model

    body = parse(CheckpointExportPeftRequest, req.body)
    record = load_checkpoint(body.checkpoint)
    spec = ModelSpec.from_dict(body.model) if body.model is not None else spec_for_checkpoint(record.base_model)
    method = build_method_from_checkpoint(record, get_frozen_model(ctx.state, spec))
    out = export_peft(method, body.out_dir)
    return Reply(body=to_body(CheckpointExportPeftReply(out_dir=str(out), method=method.name,
                                                        files=[CONFIG_FILE, WEIGHTS_FILE])))


@op("checkpoint_import_peft")
def checkpoint_import_peft(req: Request, ctx: OpContext) -> Reply:
    from softprompt_worker.training.checkpoints import save_checkpoint
    from softprompt_worker.peft_io import import_peft
    from softprompt_worker.models.cache import get_frozen_model

    body = parse(CheckpointImportPeftRequest, req.body)
    frozen = get_frozen_model(ctx.state, ModelSpec.from_dict(body.model))
    method = import_peft(body.adapter_dir, frozen)
    written = save_checkpoint(body.out, method, step=0)
    return Reply(body=to_body(CheckpointImportPeftReply(path=str(written), method=method.name,
                                                        method_config=method.config.to_dict())))
