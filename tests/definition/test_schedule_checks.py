"""Schedule names are unique within a workflow, defaults included; policies are typed."""

from __future__ import annotations

import pytest

from orchestrator.definition.loader import load_text
from orchestrator.definition.models import Overlap
from orchestrator.errors import InvalidWorkflow


def test_two_entries_with_one_default_name_are_refused_at_the_second() -> None:
    text = "workflow: w\nschedule:\n  - cron: '0 1 * * *'\n  - cron: '0 1 * * *'\nsteps:\n  a: {task: demo.echo}\n"
    with pytest.raises(InvalidWorkflow) as caught:
        load_text(text, "w.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "w.yaml:4:5: schedule[1]: is named '0 1 * * *' by default (its cron or interval), as schedule[0] is; "
        "give each entry a distinct `name`"
    ]


def test_policies_and_their_defaults() -> None:
    text = (
        "workflow: w\nschedule:\n  - {every: 1h}\n"
        "  - {name: n, every: 1h, overlap: cancel_previous, catchup: true, catchup_limit: 1000}\n"
        "steps:\n  a: {task: demo.echo}\n"
    )
    first, second = load_text(text).schedule
    assert (first.effective_name, first.overlap, first.catchup, first.catchup_limit) == (
        "every 1h",
        Overlap.SKIP,
        False,
        10,
    )
    assert (second.effective_name, second.overlap, second.catchup_limit) == ("n", Overlap.CANCEL_PREVIOUS, 1000)
    with pytest.raises(InvalidWorkflow, match="catchup_limit"):
        load_text(text.replace("1000", "1001"))
