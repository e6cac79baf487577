"""Bad workflow files through ``orchestrator validate`` and ``orchestrator run``.

Each is refused with exactly the problems :data:`FILE_CASES` lists, located as ``FILE:LINE:COL``,
exit 2, nothing on standard output, no traceback, in bounded time, and the run store unchanged.
"""

from __future__ import annotations

import time

import pytest

from tests.badinput.cases import FILE_CASES, FileCase
from tests.badinput.conftest import Cli

# Parsing is pure Python: a file just over the value limit is read at ~30 µs a value before it
# is refused. Generous, since other suites share this machine; a hang is minutes.
TIME_LIMIT = 30.0


def params() -> list[object]:
    found: list[object] = []
    for case in FILE_CASES:
        for command in case.commands:
            found.append(pytest.param(case, command, id=f"{case.id}-{command}"))
    return found


def matches(line: str, expected: str) -> bool:
    return line.startswith(expected[:-3]) if expected.endswith("...") else line == expected


def test_the_corpus_is_large_and_every_id_is_unique() -> None:
    ids = [case.id for case in FILE_CASES]
    assert len(ids) >= 60
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(("case", "command"), params())
def test_a_bad_file_is_refused_with_located_problems(cli: Cli, case: FileCase, command: str) -> None:
    path = cli.files / f"{case.id}{case.suffix}"
    content = case.content()
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    expected = [line.replace("{file}", str(path)) for line in case.expected]
    before = cli.store.snapshot()
    started = time.monotonic()

    code, out, err = cli.invoke(command, str(path))

    assert time.monotonic() - started < TIME_LIMIT
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == len(expected), err[:3000]
    for line, wanted in zip(lines, expected, strict=True):
        assert matches(line, wanted), f"\n got: {line[:500]}\nwant: {wanted[:500]}"
    assert all(len(line) < 1000 for line in lines), "a message quotes a huge input whole"
    cli.store.assert_unchanged(before)
