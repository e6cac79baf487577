"""Plans compiled once per definition: a submit of a workflow already compiled does no compiling.

A :class:`Plan` is a pure function of its definition and the settings' policy layer, and frozen,
so a process can keep it. :class:`PlanCache` finds it by the definition object first (the
registry hands out the same :class:`~orchestrator.definition.models.Workflow` for every submit
until its file changes: no hashing at all), then by content (:func:`definition_hash`: a file read
again, or the same workflow built twice), and compiles only on a miss. Both maps are bounded,
least recently used first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TypeVar

from orchestrator.definition.models import Policy, Workflow
from orchestrator.plan.compiler import Plan, compile_workflow, definition_hash

K = TypeVar("K")
V = TypeVar("V")

PLAN_CACHE_SIZE = 128
"""Plans kept per process (a 10,000-step plan holds a few MB)."""


class PlanCache:
    """The plans of the workflows one coordinator submits, for one base policy.

    Args:
        base: The settings layer of step policy that every plan is compiled with.
        size: Plans kept.
    """

    def __init__(self, base: Policy, size: int = PLAN_CACHE_SIZE) -> None:
        self.base = base
        self.size = size
        self._by_object: OrderedDict[int, tuple[Workflow, str, Plan]] = OrderedDict()
        """id(workflow) -> (the workflow, kept alive so that its id is not reused; its digest; its plan)."""
        self._by_content: OrderedDict[str, Plan] = OrderedDict()
        self._lock = threading.Lock()  # the API submits from a thread pool

    def plan(self, workflow: Workflow) -> Plan:
        """The plan of ``workflow``, compiled at most once while it stays in the cache."""
        with self._lock:
            entry = self._by_object.get(id(workflow))
            if entry is not None and entry[0] is workflow:
                self._by_object.move_to_end(id(workflow))
                if entry[1] in self._by_content:
                    self._by_content.move_to_end(entry[1])
                return entry[2]
        digest = definition_hash(workflow)
        with self._lock:
            plan = self._by_content.get(digest)
        if plan is None:
            plan = compile_workflow(workflow, self.base)
        with self._lock:
            _put(self._by_content, digest, plan, self.size)
            _put(self._by_object, id(workflow), (workflow, digest, plan), self.size)
        return plan


def _put(cache: OrderedDict[K, V], key: K, value: V, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)
