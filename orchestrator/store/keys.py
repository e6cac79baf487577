"""Every Redis key and queue name the project uses, built in one place.

Grepping this file shows everything we store. Keys of one run share the hash tag ``{run_id}``
so that a Lua script may touch all of them on Redis Cluster too.
"""

from __future__ import annotations

from bisect import bisect
from dataclasses import dataclass

from orchestrator.engine.unit import Unit

DEFAULT_PREFIX = "orch"
PRIORITY_SEPARATOR = "\x06\x16"
"""Between a queue's name and its priority step in kombu's Redis transport (``Channel.sep``)."""
PRIORITY_STEPS = (0, 3, 6, 9)
"""kombu's default ``priority_steps``; our transport options keep it."""


RUN_KEY_KINDS = {
    "step": "step",
    "output": "output",
    "items": "item_outputs",
    "join": "join",
    "history": "history",
    "inputs": "item_inputs",
    "removal": "removal",
}
"""The kind of a run's key by the word after its hash tag (``:step:NAME:item:N`` is an ``item``)."""
GLOBAL_KEY_KINDS = {
    "runs": "runs",
    "runs:expiring": "expiring",
    "runs:archiving": "archiving",
    "leases": "leases",
    "outbox": "outbox",
    "dead-letters": "dead_letters",
    "dead-letters:index": "dead_letters",
}
"""The kind of each key of which there is one per namespace."""
PREFIXED_KEY_KINDS = {
    "broker:": "broker",
    "runs:workflow:": "runs_of",
    "submission:": "submission",
    "schedule:": "schedule",
    "plan:": "plan",
    "idempotency:": "idempotency",
    "sensor:": "sensor",
    "lock:": "lock",
}
"""The kind of keys by what follows the namespace's prefix."""


@dataclass(frozen=True)
class Keys:
    """Key builder for one namespace (``ORCH_KEY_PREFIX``; tests use one prefix each).

    Attributes:
        prefix: Prepended to every key.
    """

    prefix: str = DEFAULT_PREFIX

    def kind(self, key: str) -> str | None:
        """Which of the methods below built ``key`` (``run``, ``step``, ``item``, ``runs_of``, ``broker``...);
        ``other`` for an unknown key of the namespace, None for a key outside it. What
        ``orchestrator store stats`` counts by."""
        if not key.startswith(f"{self.prefix}:"):
            return None
        rest = key[len(self.prefix) + 1 :]
        if rest.startswith("run:{") and "}" in rest:
            words = rest.split("}", 1)[1].split(":")
            if len(words) == 1:
                return "run" if not words[0] else "other"
            if words[1] == "step" and len(words) > 3:
                return "item" if words[3] == "item" else "other"
            return RUN_KEY_KINDS.get(words[1], "other")
        if rest in GLOBAL_KEY_KINDS:
            return GLOBAL_KEY_KINDS[rest]
        return next((kind for start, kind in PREFIXED_KEY_KINDS.items() if rest.startswith(start)), "other")

    # --- broker (kombu's Redis transport, namespaced with ``global_keyprefix``) ---
    def broker_prefix(self) -> str:
        """Prefix kombu puts before each of its keys."""
        return f"{self.prefix}:broker:"

    def queue(self, name: str) -> str:
        """The Redis list holding a queue's messages (what autoscalers measure)."""
        return f"{self.broker_prefix()}{name}"

    def queue_lists(self, name: str, priority_steps: tuple[int, ...] = PRIORITY_STEPS) -> tuple[str, ...]:
        """Every Redis list of a queue: kombu keeps one per priority step, ``queue\\x06\\x16<step>``
        (step 0 is the plain :meth:`queue`). A queue's depth is the sum of their lengths."""
        return tuple(self.queue(name) + (f"{PRIORITY_SEPARATOR}{step}" if step else "") for step in priority_steps)

    def queue_list(self, name: str, priority: int, priority_steps: tuple[int, ...] = PRIORITY_STEPS) -> str:
        """The list a message of this priority goes to (kombu's ``Channel._q_for_pri``)."""
        step = priority_steps[bisect(priority_steps, priority) - 1]
        return self.queue(name) + (f"{PRIORITY_SEPARATOR}{step}" if step else "")

    # --- runs ---
    def run(self, run_id: str) -> str:
        """Hash: the run's own fields (status, workflow, params, times, counters)."""
        return f"{self.prefix}:run:{{{run_id}}}"

    def step(self, run_id: str, step: str) -> str:
        """Hash: one step's state (status, attempts, task_id, worker, times, error)."""
        return f"{self.prefix}:run:{{{run_id}}}:step:{step}"

    def item(self, run_id: str, step: str, index: int) -> str:
        """Hash: the state of one item of a ``for_each`` step."""
        return f"{self.prefix}:run:{{{run_id}}}:step:{step}:item:{index}"

    def unit(self, unit: Unit) -> str:
        """Hash: the state of a unit of work, :meth:`step` or :meth:`item`."""
        if unit.item is None:
            return self.step(unit.run_id, unit.step)
        return self.item(unit.run_id, unit.step, unit.item)

    def output(self, run_id: str, step: str) -> str:
        """String: a step's output as JSON."""
        return f"{self.prefix}:run:{{{run_id}}}:output:{step}"

    def item_outputs(self, run_id: str, step: str) -> str:
        """Hash: item index -> output JSON, for a ``for_each`` step."""
        return f"{self.prefix}:run:{{{run_id}}}:items:{step}"

    def join(self, run_id: str, step: str) -> str:
        """Hash: need name -> final status, the arrivals a step's join has seen."""
        return f"{self.prefix}:run:{{{run_id}}}:join:{step}"

    def history(self, run_id: str) -> str:
        """Stream: the run's events (submitted, each step queued/started/ended, cancelled or retried by whom)."""
        return f"{self.prefix}:run:{{{run_id}}}:history"

    def runs(self) -> str:
        """Sorted set: run id scored by creation time."""
        return f"{self.prefix}:runs"

    def runs_of(self, workflow: str) -> str:
        """Sorted set: a workflow's run ids scored by creation time."""
        return f"{self.prefix}:runs:workflow:{workflow}"

    def expiring(self) -> str:
        """Sorted set: finished run id -> when retention removes its keys (epoch s); the janitor
        (:mod:`orchestrator.store.retention`) reads the runs that are due from here."""
        return f"{self.prefix}:runs:expiring"

    def removal(self, run_id: str) -> str:
        """Hash: a run's own hash while retention removes its keys, renamed from :meth:`run` so the run
        reads as gone at once; the janitor finds the run's plan here should it stop midway."""
        return f"{self.prefix}:run:{{{run_id}}}:removal"

    def submission(self, workflow: str, key: str) -> str:
        """String: run id of a submission with this idempotency key."""
        return f"{self.prefix}:submission:{workflow}:{key}"

    # --- schedules ---
    def schedule(self, workflow: str, name: str) -> str:
        """Hash: one schedule's state (last tick and its decision, last run, counts of started, skipped, dropped)."""
        return f"{self.prefix}:schedule:{workflow}:{name}"

    # --- plans and side effects ---
    def plan(self, plan_id: str) -> str:
        """String: a compiled plan as JSON, content-addressed."""
        return f"{self.prefix}:plan:{plan_id}"

    def idempotency(self, task: str, key: str) -> str:
        """Hash: the owner, state and recorded output of a step's idempotency key, scoped by task name."""
        return f"{self.prefix}:idempotency:{task}:{key}"

    # --- triggers ---
    def sensor(self, workflow: str) -> str:
        """Hash: a sensor's last check, its condition, its edges and the run the last one started."""
        return f"{self.prefix}:sensor:{workflow}"

    # --- poison messages ---
    def dead_letters(self) -> str:
        """Hash: dead letter id -> the refused message and why, as JSON."""
        return f"{self.prefix}:dead-letters"

    def dead_letter_index(self) -> str:
        """Sorted set: dead letter id scored by when it was refused."""
        return f"{self.prefix}:dead-letters:index"

    # --- liveness ---
    def leases(self) -> str:
        """Sorted set: every running unit (``str(Unit)``, ``run|step|item``) scored by lease expiry (epoch s)."""
        return f"{self.prefix}:leases"

    def outbox(self) -> str:
        """Sorted set: steps marked queued (``str(Unit)``) whose message may not be published yet,
        scored by when to publish it again if it still is there."""
        return f"{self.prefix}:outbox"

    def item_inputs(self, run_id: str, step: str) -> str:
        """List: the items a ``for_each`` step fans out over, as JSON, in order."""
        return f"{self.prefix}:run:{{{run_id}}}:inputs:{step}"

    def sweeper_lock(self) -> str:
        """String: held by the one process sweeping expired leases right now."""
        return f"{self.prefix}:lock:sweeper"

    # --- durable history ---
    def archiving(self) -> str:
        """Sorted set: finished runs (marked ``archive``) not yet written to the durable history,
        scored by when they ended (epoch s); retention keeps a run while it is here."""
        return f"{self.prefix}:runs:archiving"

    def history_lock(self) -> str:
        """String: held by the one process exporting finished runs to the durable history right now."""
        return f"{self.prefix}:lock:history"
