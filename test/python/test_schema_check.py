"""``make schema-check`` (scripts/check-schema.sh): passes on the committed schemas, fails on a stale one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATED = ("proto/schema", "ts/src/gen/schema")


def check(tree: Path) -> subprocess.CompletedProcess:
    env = {"SCHEMA_CHECK_TREE": str(tree), "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(REPO / "scripts/check-schema.sh")], env=env, capture_output=True, text=True, timeout=300)


def copy_generated(tmp_path: Path) -> Path:
    for rel in GENERATED:
        shutil.copytree(REPO / rel, tmp_path / rel)
    return tmp_path


def test_the_committed_schemas_are_current(tmp_path):
    result = check(copy_generated(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_stale_generated_file_fails_the_check(tmp_path):
    tree = copy_generated(tmp_path)
    stale = tree / "ts/src/gen/schema/prompt-tuning.ts"
    stale.write_text(stale.read_text().replace(".default(20)", ".default(21)"))
    result = check(tree)
    assert result.returncode == 1
    assert "generated schemas are stale" in result.stderr and "default(21)" in result.stdout


def test_a_stale_json_schema_fails_the_check(tmp_path):
    tree = copy_generated(tmp_path)
    (tree / "proto/schema/limits.json").unlink()
    assert check(tree).returncode == 1
