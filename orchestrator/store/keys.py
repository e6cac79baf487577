"""Every Redis key and queue name the project uses, built in one place.

Grepping this file shows everything we store. Keys of one run share the hash tag ``{run_id}``
so that a Lua script may touch all of them on Redis Cluster too.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.engine.unit import Unit

DEFAULT_PREFIX = "orch"
PRIORITY_SEPARATOR = "\x06\x16"
"""Between a queue's name and its priority step in kombu's Redis transport (``Channel.sep``)."""
PRIORITY_STEPS = (0, 3, 6, 9)
"""kombu's default ``priority_steps``; our transport options keep it."""


@dataclass(frozen=True)
class Keys:
    """Key builder for one namespace (``ORCH_KEY_PREFIX``; tests use one prefix each).

    Attributes:
        prefix: Prepended to every key.
    """

    prefix: str = DEFAULT_PREFIX

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
