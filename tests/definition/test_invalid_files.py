"""Every file in ``invalid/`` is refused with exactly the problems ``invalid/expected.txt`` lists for it.

``expected.txt`` holds one line per problem, as ``orchestrator validate`` prints it
(``FILE:LINE:COL: message``, FILE relative to ``invalid/``). Each line was read and judged before
it was written down: a changed message is a changed contract, so update the line on purpose.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.definition.loader import load_file
from orchestrator.errors import InvalidWorkflow

INVALID = Path(__file__).parent / "invalid"
EXPECTED = INVALID / "expected.txt"
# What the workers of these files register; any other task name is a problem (see unknown-task.yaml).
REGISTERED = frozenset(
    {
        "demo.audit",
        "demo.check",
        "demo.extract",
        "demo.fetch",
        "demo.fetch_again",
        "demo.load",
        "demo.notify",
        "demo.alert",
        "demo.process",
        "demo.publish",
        "demo.report",
        "demo.thumbnail",
        "demo.transform",
    }
)


def invalid_files() -> list[str]:
    return sorted(p.name for p in INVALID.iterdir() if p.suffix in (".yaml", ".json"))


def expected_problems() -> dict[str, list[str]]:
    """``expected.txt`` grouped by file; blank lines and ``#`` comments are skipped."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for line in EXPECTED.read_text("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            grouped[line.split(":", 1)[0]].append(line)
    return dict(grouped)


def printed_problems(name: str) -> list[str]:
    """The problems of one file as printed, with the file named relative to ``invalid/``."""
    with pytest.raises(InvalidWorkflow) as info:
        load_file(INVALID / name, tasks=REGISTERED)
    return [str(dataclasses.replace(p, file=Path(p.file).relative_to(INVALID).as_posix())) for p in info.value.problems]


def test_the_collection_is_large_and_mixes_formats() -> None:
    names = invalid_files()
    assert len(names) >= 25
    assert sum(name.endswith(".json") for name in names) >= 4


def test_every_file_has_expectations_and_every_expectation_a_file() -> None:
    assert sorted(expected_problems()) == invalid_files()


@pytest.mark.parametrize("name", invalid_files())
def test_invalid_file_prints_exactly_the_expected_problems(name: str) -> None:
    assert printed_problems(name) == expected_problems().get(name, [])


def test_validate_prints_the_same_problems_and_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(INVALID)
    monkeypatch.setattr("orchestrator.cli.definitions.known_tasks", lambda: REGISTERED)

    result = CliRunner().invoke(app, ["validate", *invalid_files()])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [line for name in invalid_files() for line in expected_problems()[name]]
