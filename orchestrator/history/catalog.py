"""Reading runs wherever they are: the hot store first, the history once retention has removed them.

What ``status``, ``runs`` and the API read. While a run's keys are in Redis, Redis answers (it is
the truth for a running or retried run); after retention deleted them, the history does. A list
merges both by the key they share (:class:`~orchestrator.engine.ports.ListKey`, the run's
creation score then its id), so one cursor pages through runs newest first, across both.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime

from orchestrator.engine.ports import Archive, Listed, ListKey, RunHistory, RunPage, RunQuery, Runs
from orchestrator.engine.records import RunEvent, RunRecord, RunStatus
from orchestrator.errors import RunNotFound, ServiceUnavailable

log = logging.getLogger(__name__)


class RunCatalog:
    """Runs from the hot store, then from the history.

    Args:
        hot: The hot store's runs.
        archive: The hot store's archive side (which runs it still holds, and their scores).
        history: The history; None when ``ORCH_HISTORY_URL`` is unset (then this is the hot store alone).
    """

    def __init__(self, hot: Runs, archive: Archive, history: RunHistory | None = None) -> None:
        self.hot = hot
        self.archive = archive
        self.history = history

    def get(self, run_id: str) -> RunRecord:
        """The run's record.

        Raises:
            RunNotFound: neither the hot store nor the history has it.
        """
        try:
            return self.hot.get(run_id)
        except RunNotFound:
            if self.history is None:
                raise
            return self.history.get(run_id)

    def status(self, run_id: str) -> RunStatus:
        """The run's status (one read of its hash while it is hot).

        Raises:
            RunNotFound: neither has it.
        """
        try:
            return RunStatus(self.hot.plan_of(run_id)[1])
        except RunNotFound:
            if self.history is None:
                raise
            return self.history.get(run_id).status

    def events(self, run_id: str, after: str = "-", limit: int = 1000) -> list[RunEvent]:
        """The run's events after ``after``, oldest first.

        Raises:
            RunNotFound: neither has it.
        """
        try:
            return self.hot.history(run_id, after, limit)
        except RunNotFound:
            if self.history is None:
                raise
            return self.history.history(run_id, after, limit)

    def page(self, query: RunQuery) -> RunPage:
        """A page of runs, newest first, from both; ``next`` continues below the last run examined.

        Each side reads up to a page below the cursor. Only the part both sides have examined in
        full is certain (down to the higher of their last examined keys), so the page ends there:
        it may be short, with a cursor, as a page of the hot store alone may be. While the history
        cannot be reached, the page is the hot store's alone (logged).
        """
        hot = self.hot.page(query)
        if self.history is None:
            return hot
        try:
            old = self.history.listed(query)
        except ServiceUnavailable as exc:  # Redis's runs are still worth showing
            log.warning("listing runs from Redis alone: %s", exc)
            return hot
        present = self.archive.hot([r.run_id for r in hot.runs] + [e.run.run_id for e in old])
        entries = [Listed(ListKey(_score(present.get(r.run_id), r.created_at), r.run_id), r) for r in hot.runs]
        entries += [e for e in old if e.run.run_id not in present]  # still hot: the hot store's answer stands
        bounds = [ListKey.parse(hot.next)] if hot.next else []
        if len(old) == query.limit:
            bounds.append(old[-1].key)
        bound = max(bounds) if bounds else None
        entries = sorted((e for e in entries if bound is None or e.key >= bound), key=lambda e: e.key, reverse=True)
        shown = entries[: query.limit]
        if len(shown) == query.limit:
            return RunPage([e.run for e in shown], shown[-1].key.cursor())
        return RunPage([e.run for e in shown], bound.cursor() if bound is not None else None)


def _score(score: float | None, created_at: str) -> float:
    """A hot run's key score: its index score, or its creation time when the index lost it."""
    if score is not None and not math.isnan(score):
        return score
    return datetime.fromisoformat(created_at).timestamp()
