"""Bad command lines: each exits 1 (unknown run) or 2 (invalid input) with a clear message, and
leaves the run store, seeded with one run, exactly as it was."""

from __future__ import annotations

import json

import pytest

from tests.badinput.cases import CLI_CASES, CliCase
from tests.badinput.conftest import Cli, flat


def test_every_id_is_unique() -> None:
    assert len({case.id for case in CLI_CASES}) == len(CLI_CASES)


@pytest.mark.parametrize("case", CLI_CASES, ids=[case.id for case in CLI_CASES])
def test_a_bad_command_line_fails_cleanly(cli: Cli, case: CliCase) -> None:
    typed = str(cli.files / "typed.yaml")
    args = [arg.replace("{typed}", typed).replace("{seeded}", cli.store.seeded) for arg in case.args]
    before = cli.store.snapshot()

    code, out, err = cli.invoke(*args)

    assert code == case.code, err
    assert out == "", "a refused command printed a result"
    for wanted in (case.expected, *case.also):
        assert wanted in flat(err), f"\n{wanted!r} not in:\n{err[:3000]}"
    cli.store.assert_unchanged(before)


def test_every_bad_param_is_on_its_own_line_and_json_mode_keeps_stdout_clean(cli: Cli) -> None:
    typed = str(cli.files / "typed.yaml")
    before = cli.store.snapshot()

    code, out, err = cli.invoke("run", typed, "--json", "-p", "limit=x", "-p", "ratio=NaN", "-p", "ids=[", "-p", "q=1")

    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: param 'limit' must be integer, got 'x'",
        "error: param 'ratio' must be number, got 'NaN'",
        "error: param 'ids' must be array, got '['",
        "error: unknown param 'q' (declared: dry, ids, limit, mode, name, opts, ratio)",
        "error: param 'name' is required (string)",
    ]
    cli.store.assert_unchanged(before)


def test_a_workflow_named_after_an_invalid_file_shows_its_problems(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    (cli.files / "flows").mkdir()
    (cli.files / "flows" / "broken.yaml").write_text("workflow: broken\nsteps: {a: {task: demo.echo, needs: [b]}}\n")
    (cli.files / "flows" / "other.yaml").write_text("workflow: other\nsteps: [a]\n")
    monkeypatch.setenv("ORCH_WORKFLOWS_DIR", str(cli.files / "flows"))
    before = cli.store.snapshot()

    code, out, err = cli.invoke("run", "broken")

    assert (code, out) == (2, "")
    assert err.splitlines() == [f"{cli.files / 'flows' / 'broken.yaml'}:2:38: step 'a' needs 'b', which is not a step"]
    code, out, err = cli.invoke("run", "brokn")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"error: no workflow 'brokn' in {cli.files / 'flows'}; "
        "2 invalid file(s) skipped there, check them with `orchestrator validate`"
    ]
    cli.store.assert_unchanged(before)


def test_user_data_is_printed_verbatim_not_as_markup_or_emoji(cli: Cli) -> None:
    typed = str(cli.files / "typed.yaml")
    name = ":100: [red]not red[/red] :thumbs_up:"

    code, out, _ = cli.invoke("run", typed, "-p", f"name={name}", "--json")  # a valid run: the store gains it

    assert code == 0
    code, out, _ = cli.invoke("status", json.loads(out)["run_id"], "--json")
    assert code == 0
    assert json.loads(out)["params"]["name"] == name


def test_the_seeded_run_is_still_readable_after_all_that(cli: Cli) -> None:
    code, out, _ = cli.invoke("status", cli.store.seeded, "--json")

    assert code == 0
    assert json.loads(out)["steps"]["only"]["status"] == "queued"
