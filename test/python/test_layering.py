"""Arrows point down: the lower packages of the worker import nothing above them (read from the AST, so
an import inside a function or under ``TYPE_CHECKING`` counts too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "softprompt_worker"

# package -> the softprompt_worker packages its modules must never import
FORBIDDEN = {
    "distributed": ("softprompt_worker.ops", "softprompt_worker.training", "softprompt_worker.inference"),
    "serving": ("softprompt_worker.ops", "softprompt_worker.distributed", "softprompt_worker.models",
                "softprompt_worker.training", "softprompt_worker.inference", "softprompt_worker.methods",
                "softprompt_worker.tasks"),
    "models": ("softprompt_worker.ops", "softprompt_worker.serving.server", "softprompt_worker.distributed",
               "softprompt_worker.training", "softprompt_worker.inference"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, absolute, with its line (relative imports resolved)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]  # `from pkg import module`
    return found


def _under(module: str, root: str) -> bool:
    return module == root or module.startswith(root + ".")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_point_down(package):
    bad = [f"{path.relative_to(PACKAGE)}:{line} imports {module}"
           for path in sorted((PACKAGE / package).rglob("*.py"))
           for line, module in imported_modules(path)
           if any(_under(module, root) for root in FORBIDDEN[package])]
    assert not bad, "\n".join(bad)


def test_the_check_reads_imports():
    modules = [m for _, m in imported_modules(PACKAGE / "distributed" / "collective_ops.py")]
    assert "softprompt_worker.serving.handlers.Request" in modules  # `from x import y` is seen, names included
    assert _under("softprompt_worker.ops.data", "softprompt_worker.ops")
    assert not _under("softprompt_worker.opsx", "softprompt_worker.ops")
