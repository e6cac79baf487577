"""Every Redis key and queue name the project uses, built in one place.

Grepping this file shows everything we store. There are two layouts of one namespace:

* **One Redis** (and Sentinel): a run's keys are ``orch:run:{RUN_ID}...``, sharing the hash tag
  ``{RUN_ID}``; the keys that index every run (``orch:leases``, ``orch:outbox``, ``orch:runs``...)
  are one each: the namespace is one :class:`Shard`.
* **Redis Cluster** (``Keys.shards`` > 0): the namespace is cut into that many shards by a hash of
  the run id. A shard's keys, its runs' keys and its indexes, share the shard's hash tag
  (``orch:{s3.41}:leases``, ``orch:{s3.41}:run:RUN_ID:step:NAME``), so they sit in one cluster
  slot and every Lua script touches keys of one slot only. The sweeper, the janitor and the
  exporter go through the shards one by one; a list of runs merges the shards' indexes.
"""

from __future__ import annotations

import uuid
import zlib
from bisect import bisect
from dataclasses import dataclass
from functools import cached_property

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from orchestrator.engine.unit import Unit

DEFAULT_PREFIX = "orch"
PRIORITY_SEPARATOR = "\x06\x16"
"""Between a queue's name and its priority step in kombu's Redis transport (``Channel.sep``)."""
PRIORITY_STEPS = (0, 3, 6, 9)
"""kombu's default ``priority_steps``; our transport options keep it."""
DEFAULT_SHARDS = 16
"""Shards of a namespace on Redis Cluster (``ORCH_STORE_SHARDS``): at most this many masters share the work."""


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
"""The kind of each key of which there is one per shard."""
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
"""The kind of keys by what follows the namespace's prefix (or a shard's tag)."""


@dataclass(frozen=True)
class Shard:
    """The keys that index the runs of one shard: its leases, outbox, run indexes, retention and
    archive queues, dead letters and sweeper lock. On one Redis the namespace is one shard.

    Attributes:
        space: What its keys start with: the prefix (``orch``), or on a cluster the prefix and the
            shard's hash tag (``orch:{s3.41}``).
        index: Its number, 0 to shards - 1.
    """

    space: str
    index: int = 0

    def leases(self) -> str:
        """Sorted set: every running unit (``str(Unit)``, ``run|step|item``) scored by lease expiry (epoch s)."""
        return f"{self.space}:leases"

    def outbox(self) -> str:
        """Sorted set: steps marked queued (``str(Unit)``) whose message may not be published yet,
        scored by when to publish it again if it still is there."""
        return f"{self.space}:outbox"

    def runs(self) -> str:
        """Sorted set: run id scored by creation time."""
        return f"{self.space}:runs"

    def runs_of(self, workflow: str) -> str:
        """Sorted set: a workflow's run ids scored by creation time."""
        return f"{self.space}:runs:workflow:{workflow}"

    def expiring(self) -> str:
        """Sorted set: finished run id -> when retention removes its keys (epoch s); the janitor
        (:mod:`orchestrator.store.retention`) reads the runs that are due from here."""
        return f"{self.space}:runs:expiring"

    def archiving(self) -> str:
        """Sorted set: finished runs (marked ``archive``) not yet written to the durable history,
        scored by when they ended (epoch s); retention keeps a run while it is here."""
        return f"{self.space}:runs:archiving"

    def dead_letters(self) -> str:
        """Hash: dead letter id -> the refused message and why, as JSON."""
        return f"{self.space}:dead-letters"

    def dead_letter_index(self) -> str:
        """Sorted set: dead letter id scored by when it was refused."""
        return f"{self.space}:dead-letters:index"

    def sweeper_lock(self) -> str:
        """String: held by the one process sweeping this shard's expired leases right now."""
        return f"{self.space}:lock:sweeper"

    def submission(self, workflow: str, key: str) -> str:
        """String: run id of a submission with this idempotency key (the run is in this shard)."""
        return f"{self.space}:submission:{workflow}:{key}"


@dataclass(frozen=True)
class Keys:
    """Key builder for one namespace (``ORCH_KEY_PREFIX``; tests use one prefix each).

    Attributes:
        prefix: Prepended to every key.
        shards: 0 for one Redis (the namespace is one shard); on Redis Cluster, how many shards it
            is cut into (``ORCH_STORE_SHARDS``). Fixed for the life of a store: a run's keys are found
            by its shard.
    """

    prefix: str = DEFAULT_PREFIX
    shards: int = 0

    def __post_init__(self) -> None:
        if self.shards < 0:
            raise ValueError("shards must be 0 (one Redis) or more")

    @property
    def clustered(self) -> bool:
        """Whether this is the Redis Cluster layout."""
        return self.shards > 0

    # --- shards ---
    def shard(self, run_id: str) -> Shard:
        """The shard holding a run's keys and its entries of the indexes."""
        return self.all_shards[self._shard_number(run_id)]

    @cached_property
    def all_shards(self) -> tuple[Shard, ...]:
        """Every shard, in order: what the sweeper, the janitor and a list of runs go through."""
        if not self.clustered:
            return (Shard(self.prefix),)
        return tuple(Shard(f"{self.prefix}:{{{_shard_tag(i, self.shards)}}}", i) for i in range(self.shards))

    @property
    def single(self) -> Shard:
        """The one shard of a namespace on one Redis.

        Raises:
            ValueError: the namespace is sharded (name a run, or go through :attr:`all_shards`).
        """
        if self.clustered:
            raise ValueError(f"namespace {self.prefix!r} has {self.shards} shards: name the run's shard")
        return self.all_shards[0]

    def new_run_id(self, shard: Shard | None = None) -> str:
        """A new run id; in ``shard`` when one is named (a run submitted with an idempotency key is
        kept in the shard of its :meth:`submission`, so one transaction writes both)."""
        while True:
            run_id = uuid.uuid4().hex
            if shard is None or self._shard_number(run_id) == shard.index:
                return run_id

    def submission(self, workflow: str, key: str) -> str:
        """String: run id of a submission with this idempotency key (see :meth:`submission_shard`)."""
        return self.submission_shard(workflow, key).submission(workflow, key)

    def submission_shard(self, workflow: str, key: str) -> Shard:
        """The shard of a submission's idempotency key; the run it starts is created there."""
        return self.all_shards[self._shard_number(f"{workflow}\x00{key}")]

    def _shard_number(self, name: str) -> int:
        return zlib.crc32(name.encode()) % self.shards if self.clustered else 0

    def kind(self, key: str) -> str | None:
        """Which of the methods below built ``key`` (``run``, ``step``, ``item``, ``runs_of``, ``broker``...);
        ``other`` for an unknown key of the namespace, None for a key outside it. What
        ``orchestrator store stats`` counts by."""
        if not key.startswith(f"{self.prefix}:"):
            return None
        rest = key[len(self.prefix) + 1 :]
        if self.clustered and rest.startswith("{") and "}:" in rest:
            rest = rest.split("}:", 1)[1]  # the shard's tag
            if rest.startswith("run:"):  # run:RUN_ID... reads as the one-Redis run:{RUN_ID}...
                run_id, _, tail = rest[4:].partition(":")
                rest = f"run:{{{run_id}}}" + (f":{tail}" if tail else "")
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
        if self.clustered:
            return f"{self.shard(run_id).space}:run:{run_id}"
        return f"{self.prefix}:run:{{{run_id}}}"

    def step(self, run_id: str, step: str) -> str:
        """Hash: one step's state (status, attempts, task_id, worker, times, error)."""
        return f"{self.run(run_id)}:step:{step}"

    def item(self, run_id: str, step: str, index: int) -> str:
        """Hash: the state of one item of a ``for_each`` step."""
        return f"{self.run(run_id)}:step:{step}:item:{index}"

    def unit(self, unit: Unit) -> str:
        """Hash: the state of a unit of work, :meth:`step` or :meth:`item`."""
        if unit.item is None:
            return self.step(unit.run_id, unit.step)
        return self.item(unit.run_id, unit.step, unit.item)

    def output(self, run_id: str, step: str) -> str:
        """String: a step's output as JSON."""
        return f"{self.run(run_id)}:output:{step}"

    def item_outputs(self, run_id: str, step: str) -> str:
        """Hash: item index -> output JSON, for a ``for_each`` step."""
        return f"{self.run(run_id)}:items:{step}"

    def item_inputs(self, run_id: str, step: str) -> str:
        """List: the items a ``for_each`` step fans out over, as JSON, in order."""
        return f"{self.run(run_id)}:inputs:{step}"

    def join(self, run_id: str, step: str) -> str:
        """Hash: need name -> final status, the arrivals a step's join has seen."""
        return f"{self.run(run_id)}:join:{step}"

    def history(self, run_id: str) -> str:
        """Stream: the run's events (submitted, each step queued/started/ended, cancelled or retried by whom)."""
        return f"{self.run(run_id)}:history"

    def removal(self, run_id: str) -> str:
        """Hash: a run's own hash while retention removes its keys, renamed from :meth:`run` so the run
        reads as gone at once; the janitor finds the run's plan here should it stop midway."""
        return f"{self.run(run_id)}:removal"

    # --- the one shard of one Redis (see :class:`Shard`; on a cluster, name the run's shard) ---
    def runs(self) -> str:
        return self.single.runs()

    def runs_of(self, workflow: str) -> str:
        return self.single.runs_of(workflow)

    def expiring(self) -> str:
        return self.single.expiring()

    def archiving(self) -> str:
        return self.single.archiving()

    def leases(self) -> str:
        return self.single.leases()

    def outbox(self) -> str:
        return self.single.outbox()

    def dead_letters(self) -> str:
        return self.single.dead_letters()

    def dead_letter_index(self) -> str:
        return self.single.dead_letter_index()

    def sweeper_lock(self) -> str:
        return self.single.sweeper_lock()

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

    # --- durable history ---
    def history_lock(self) -> str:
        """String: held by the one process exporting finished runs to the durable history right now."""
        return f"{self.prefix}:lock:history"


def _shard_tag(index: int, shards: int) -> str:
    """The hash tag of shard ``index`` of ``shards``: the first ``s<index>.<n>`` whose cluster slot lies in
    the shard's own 1/shards of the slot space, so the shards spread evenly over masters that each
    serve a contiguous range of slots (as ``redis-cli --cluster create`` assigns them)."""
    low = index * REDIS_CLUSTER_HASH_SLOTS // shards
    high = (index + 1) * REDIS_CLUSTER_HASH_SLOTS // shards
    n = 0
    while not low <= key_slot(f"s{index}.{n}".encode()) < high:
        n += 1
    return f"s{index}.{n}"
