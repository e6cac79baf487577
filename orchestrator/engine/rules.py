"""Trigger rules: what a step's join decides each time one of its needs ends.

A step's *join* is where the outcomes of its needs arrive (``Keys.join``). The same table is
implemented in ``orchestrator/store/lua/complete.lua``, where the decision is taken atomically with
recording the arrival; ``tests/store/test_store.py`` checks the two agree on every combination.
"""

from __future__ import annotations

from enum import StrEnum

from orchestrator.definition.models import TriggerRule


class Decision(StrEnum):
    WAIT = "wait"
    FIRE = "fire"
    SKIP = "skip"


def decide(rule: TriggerRule, succeeded: int, failed: int, skipped: int, total: int) -> Decision:
    """Decide a join from the outcomes of the needs that have ended so far.

    Args:
        rule: The step's trigger rule.
        succeeded: Needs that succeeded.
        failed: Needs that failed (after their retries) or were cancelled.
        skipped: Needs that were skipped.
        total: How many needs the step has.

    Returns:
        FIRE to start the step, SKIP when its rule can no longer hold, else WAIT. Decisions are
        taken as early as they are certain: ``all_success`` skips at the first failure,
        ``one_failed`` fires at the first failure.
    """
    done = succeeded + failed + skipped
    if rule is TriggerRule.ALL_SUCCESS:
        if failed or skipped:
            return Decision.SKIP
        return Decision.FIRE if succeeded == total else Decision.WAIT
    if rule is TriggerRule.ALL_DONE:
        return Decision.FIRE if done == total else Decision.WAIT
    if rule is TriggerRule.ONE_FAILED:
        if failed:
            return Decision.FIRE
        return Decision.SKIP if done == total else Decision.WAIT
    if failed:  # none_failed
        return Decision.SKIP
    return Decision.FIRE if done == total else Decision.WAIT
