"""``docs/cli.md`` and ``docs/cli-reference.md`` say what the code does.

The exit-code table is :class:`orchestrator.errors.ExitCode`; the reference is what typer generates
from the commands (``make docs`` regenerates it).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from orchestrator.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]


def test_the_exit_code_table_is_the_error_trees() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d) \| `(\w+)` \|", text, re.M)
    assert [(int(code), name) for code, name in rows] == [(code.value, code.name) for code in ExitCode]


def test_the_command_reference_is_current(tmp_path: Path) -> None:
    generated = tmp_path / "cli-reference.md"
    command = [sys.executable, "-m", "typer", "orchestrator.cli.main", "utils", "docs", "--name", "orchestrator"]
    command += ["--title", "orchestrator: command reference", "--output", str(generated)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, env={"PATH": "/usr/bin:/bin", "COLUMNS": "100"})
    current = (ROOT / "docs" / "cli-reference.md").read_text(encoding="utf-8")
    assert generated.read_text(encoding="utf-8") == current, "run `make docs` and commit docs/cli-reference.md"
