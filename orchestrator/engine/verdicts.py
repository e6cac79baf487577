"""What the run store answers to each transition: one ``str, Enum`` per script, and the results.

Each transition is one atomic script (``orchestrator/store/lua``); its first return value is one
of these verdicts, so the engine compares enum members, never string literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from orchestrator.engine.unit import StepMessage


class ClaimVerdict(StrEnum):
    """``claim.lua``: may this delivery run its unit?"""

    OK = "ok"
    """Claimed: this execution owns the unit until it ends it or its lease expires."""
    CANCELLED = "cancelled"
    MISSING = "missing"
    """The run does not exist (any more)."""
    DONE = "done"
    """The unit already ended: a redelivery after the work was done."""
    BUSY = "busy"
    """Another live execution holds it: a duplicate."""
    STALE = "stale"
    """The message is for another attempt, or the unit is not ready (pending)."""
    POISON = "poison"
    """Its executions died too often: fail it instead of running it again."""
    INVALID = "invalid"
    """The message contradicts the store (another run's plan, an item the step never fanned out)."""


class CompleteVerdict(StrEnum):
    """``complete.lua``: was the end of a step recorded?"""

    OK = "ok"
    STALE = "stale"
    """The step already ended, or another execution owns it now."""
    CANCELLED = "cancelled"
    """Recorded, but the run was cancelled: nothing is advanced."""


class ItemVerdict(StrEnum):
    """``item.lua``: what the end of one ``for_each`` item did to its step."""

    RECORDED = "recorded"
    ALL_DONE = "all_done"
    """This was the last item: the step ends with the list of outputs."""
    STEP_FAILED = "step_failed"
    """The item failed for good: the step fails."""
    STALE = "stale"


class RecoverVerdict(StrEnum):
    """``recover.lua``: what to do with a unit whose lease or outbox entry expired."""

    NONE = "none"
    """Nothing: it is alive, finished, or its run is."""
    REQUEUE = "requeue"
    """Publish its message again."""
    POISON = "poison"
    """Its executions died too often: fail it."""
    SKIP = "skip"
    """A join decided to skip it but the process died before ending it: end it skipped."""
    REFAN = "refan"
    """A fanned-out step made no progress for a while: publish its items again."""
    FAN_IN = "fan_in"
    """Every item of a fanned-out step ended but nobody ended the step (its ender died): end it."""
    FAN_FAILED = "fan_failed"
    """An item failed but nobody failed the step (its ender died): fail it with the item's error."""


class CancelVerdict(StrEnum):
    """``cancel.lua``."""

    OK = "ok"
    FINISHED = "finished"
    """The run had already ended; nothing changed."""
    MISSING = "missing"


class KeyVerdict(StrEnum):
    """``idempotency.lua``: may this execution perform the side effect of an idempotency key?"""

    GO = "go"
    """Yes: this execution owns the key now."""
    DONE = "done"
    """It already happened: reuse the recorded output."""
    BUSY = "busy"
    """Another live execution is performing it right now."""


@dataclass(frozen=True)
class Claim:
    """The verdict on a delivery, with the script's detail (a status, an attempt, a count)."""

    verdict: ClaimVerdict
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict is ClaimVerdict.OK


@dataclass(frozen=True)
class Completion:
    """What ending a step changed: which dependents fire or skip, and the run's status."""

    verdict: CompleteVerdict
    run_status: str = ""
    fired: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    epoch: int = 0
    """The run's epoch: the messages of the fired dependents carry it."""
    pushed: tuple[str, ...] = ()
    """The fired dependents whose messages the store pushed itself (no publish owed for them)."""

    @property
    def run_finished(self) -> bool:
        return self.run_status in ("succeeded", "failed")


@dataclass(frozen=True)
class ItemEnd:
    """What ending an item did, and the task id of the execution that owns its step."""

    verdict: ItemVerdict
    step_task_id: str = ""


@dataclass(frozen=True)
class Recovery:
    """The decision about an expired unit; ``message`` is what to publish (or fail) for it."""

    verdict: RecoverVerdict
    message: StepMessage | None = None
    task_id: str = ""
    deaths: int = 0
    """For ``poison``: how many times its executions died."""
    items: int = 0
    """For ``refan``: how many items the step fanned out."""


@dataclass(frozen=True)
class Cancellation:
    """The outcome of cancelling a run and the task ids of its queued or running steps."""

    verdict: CancelVerdict
    task_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reset:
    """A finished run reset for retry: the steps to start and to skip, and the run's new epoch."""

    start: tuple[str, ...]
    skip: tuple[str, ...]
    epoch: int


@dataclass(frozen=True)
class SideEffect:
    """The answer to taking an idempotency key, with the recorded output when it is ``done``."""

    verdict: KeyVerdict
    output: Any = None
