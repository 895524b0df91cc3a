"""A method is one unit: its class declares the tasks that train it and its PEFT format, and the tasks and
``peft_io`` ask it; nothing outside a method's own module (and the one registration line) lists names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import softprompt_worker
from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.methods.prefix_tuning import PrefixTuning
from softprompt_worker.methods.p_tuning import PTuning
from softprompt_worker.methods.prompt_tuning import PromptTuning
from softprompt_worker.methods.registry import (method_class, method_for_peft_type, method_names, methods_training,
                                                peft_methods)
from softprompt_worker.tasks.registry import check_method, task_class, task_names

PACKAGE = Path(softprompt_worker.__file__).parent


def test_every_method_declares_known_tasks_and_the_tasks_ask_it():
    for name in method_names():
        cls = method_class(name)
        assert cls.tasks and cls.tasks <= set(task_names()), name
        for task in task_names():
            if task in cls.tasks:
                check_method(task_class(task), name)
            else:
                with pytest.raises(InvalidArgumentError, match=f"does not train method '{name}'"):
                    check_method(task_class(task), name)
    assert methods_training("generation") == ["prompt_tuning", "prefix_tuning", "p_tuning"]
    assert methods_training("embedding") == ["suffix_tuning"]
    with pytest.raises(InvalidArgumentError, match="it trains passage_tuning"):
        check_method(task_class("reranking"), "prompt_tuning")


def test_peft_formats_are_declared_by_the_methods():
    assert peft_methods() == [PromptTuning, PrefixTuning, PTuning]
    assert method_for_peft_type("PROMPT_TUNING") is PromptTuning
    assert method_for_peft_type("PREFIX_TUNING") is PrefixTuning
    assert method_for_peft_type("P_TUNING") is PTuning
    with pytest.raises(InvalidArgumentError,
                       match=r"peft_type 'LORA' is not supported \(PROMPT_TUNING, PREFIX_TUNING, P_TUNING\)"):
        method_for_peft_type("LORA")
    assert method_class("suffix_tuning").peft_type is None and method_class("passage_tuning").peft_type is None


def test_no_module_outside_the_methods_lists_method_names():
    """Tasks, the planner, PEFT I/O, capabilities and the serving ops ask the methods; a literal method name
    there is a second source."""
    names = set(method_names())
    checked = [*sorted((PACKAGE / "tasks").glob("*.py")), *sorted((PACKAGE / "planner").glob("*.py")), PACKAGE / "peft_io.py", PACKAGE / "ops" / "peft.py",
               PACKAGE / "capabilities.py", PACKAGE / "ops" / "embedding.py", PACKAGE / "ops" / "rerank.py"]
    for path in checked:
        literals = {node.value for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        assert not literals & names, f"{path.name} names {sorted(literals & names)} (docs may; code asks the method)"
