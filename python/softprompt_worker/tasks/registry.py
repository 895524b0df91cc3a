"""The task registry: task name → module. Adding a task means one module under ``tasks/`` exposing
``TASK = <its class>`` and one line here."""

from __future__ import annotations

import importlib

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.tasks.base import Task, check_trains

_MODULES = {
    "generation": "softprompt_worker.tasks.generation",
    "classification": "softprompt_worker.tasks.classification",
    "embedding": "softprompt_worker.tasks.embedding",
    "reranking": "softprompt_worker.tasks.reranking",
}


def task_names() -> list[str]:
    """Names of the tasks whose module imports in this environment."""
    names = []
    for name, module in _MODULES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        names.append(name)
    return names


def task_class(name: str) -> type[Task]:
    """The class implementing task ``name``; InvalidArgumentError naming the known tasks otherwise."""
    if name not in _MODULES:
        raise InvalidArgumentError(f"task: {name!r} is not one of {', '.join(_MODULES)}")
    cls = getattr(importlib.import_module(_MODULES[name]), "TASK")
    if cls.name != name:  # pragma: no cover - a wiring bug
        raise RuntimeError(f"module {_MODULES[name]} declares task {cls.name!r}, registered as {name!r}")
    return cls


def check_method(task: type[Task], method: str) -> None:
    """InvalidArgumentError when ``task`` cannot train ``method`` (asked of the method: its ``tasks``)."""
    from softprompt_worker.methods.registry import method_class

    check_trains(task.name, method_class(method))
