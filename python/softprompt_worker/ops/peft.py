"""Ops ``checkpoint_export_peft`` and ``checkpoint_import_peft``: PEFT adapters in and out (``peft_io``).

``checkpoint_export_peft``::

    {"checkpoint": str (file), "out_dir": str, "model"?: ModelSpec (default: the checkpoint's model)}
    -> {"out_dir": str, "method": str, "files": ["adapter_config.json", "adapter_model.safetensors"]}

``checkpoint_import_peft``::

    {"adapter_dir": str, "model": ModelSpec, "out": str (checkpoint file to write)}
    -> {"path": str, "method": str, "method_config": {...}}

Prompt tuning (any model) and decoder-only prefix tuning; anything PEFT cannot represent (our
encoder-decoder prefixes) or we cannot (PEFT decoder prompts) is an ``invalid_argument`` error.
"""

from __future__ import annotations

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.models import ModelSpec
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op


@op("checkpoint_export_peft")
def checkpoint_export_peft(req: Request, ctx: OpContext) -> Reply:
    from softprompt_worker.training.checkpoints import build_method_from_checkpoint, load_checkpoint
    from softprompt_worker.peft_io import CONFIG_FILE, WEIGHTS_FILE, export_peft
    from softprompt_worker.inference.prompts import spec_for_checkpoint
    from softprompt_worker.models.cache import get_frozen_model

    path, out_dir = _path(req.body, "checkpoint"), _path(req.body, "out_dir")
    record = load_checkpoint(path)
    model = req.body.get("model")
    spec = ModelSpec.from_dict(model) if model is not None else spec_for_checkpoint(record.base_model)
    method = build_method_from_checkpoint(record, get_frozen_model(ctx.state, spec))
    out = export_peft(method, out_dir)
    return Reply(body={"out_dir": str(out), "method": method.name, "files": [CONFIG_FILE, WEIGHTS_FILE]})


@op("checkpoint_import_peft")
def checkpoint_import_peft(req: Request, ctx: OpContext) -> Reply:
    from softprompt_worker.training.checkpoints import save_checkpoint
    from softprompt_worker.peft_io import import_peft
    from softprompt_worker.models.cache import get_frozen_model

    adapter_dir, out = _path(req.body, "adapter_dir"), _path(req.body, "out")
    frozen = get_frozen_model(ctx.state, ModelSpec.from_dict(req.body.get("model")))
    method = import_peft(adapter_dir, frozen)
    written = save_checkpoint(out, method, step=0)
    return Reply(body={"path": str(written), "method": method.name, "method_config": method.config.to_dict()})


def _path(body, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{key}: expected a path, got {value!r:.60}")
    return value
