"""Every example of ``docs/format.md`` gives exactly the problems the page shows.

An example is a ```yaml block whose first line is ``# NAME.yaml`` (the file, that comment included),
followed by a ```console block ``$ orchestrator validate NAME.yaml`` and the lines it prints.
``python tests/docs/test_format_doc.py`` rewrites the console blocks from the current code (then
read the diff before committing).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "format.md"
EXAMPLE = re.compile(
    r"```yaml\n(?P<body># (?P<name>[\w.-]+)\n.*?)```\n\n"
    r"```console\n\$ orchestrator validate (?P=name)\n(?P<out>.*?)```",
    re.S,
)


@dataclass(frozen=True)
class Example:
    name: str
    body: str
    printed: list[str]


def examples(text: str) -> Iterator[Example]:
    for match in EXAMPLE.finditer(text):
        yield Example(match["name"], match["body"], match["out"].splitlines())


def validate(example: Example, directory: Path) -> list[str]:
    from orchestrator.cli import app

    (directory / example.name).write_text(example.body, encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", example.name])
    return (result.stdout + result.stderr).splitlines()


def test_the_page_has_examples() -> None:
    assert len(list(examples(DOC.read_text(encoding="utf-8")))) >= 8


@pytest.mark.parametrize("example", list(examples(DOC.read_text(encoding="utf-8"))), ids=lambda e: e.name)
def test_each_example_prints_what_the_page_shows(
    example: Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert validate(example, tmp_path) == example.printed


if __name__ == "__main__":  # rewrite the console blocks from the current code
    import tempfile

    sys.path.insert(0, str(ROOT))
    text = DOC.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.chdir(tmp)

        def fill(match: re.Match[str]) -> str:
            printed = validate(Example(match["name"], match["body"], []), Path(tmp))
            return (
                match.group(0).replace(match["out"], "".join(f"{line}\n" for line in printed), 1)
                if match["out"]
                else match.group(0)[:-3] + "".join(f"{line}\n" for line in printed) + "```"
            )

        DOC.write_text(EXAMPLE.sub(fill, text), encoding="utf-8")
