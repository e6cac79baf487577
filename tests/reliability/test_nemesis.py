"""A nemesis soak: runs of DAGs with ``for_each``, retries and idempotent steps while faults strike at random.

While runs are submitted and run, a nemesis (seeded; the seed is printed, ``ORCH_NEMESIS_SEED``
replays it) SIGKILLs worker nodes and prefork children, restarts Redis (AOF, fsync always),
cuts the broker connection through a proxy, and delivers duplicate and stale messages. Then the
faults stop, and a checker proves from the side effects themselves (recorded by the tasks in
another Redis, not from the run records) that:

- every run finished (its last step, ``trigger_rule: all_done``, took effect);
- every step with an idempotency key took effect exactly once, except where the process performing
  it was SIGKILLed between the effect and the record of its output (no system can tell that
  effect from one that never happened; the checker counts those apart, and any other repeat
  fails the soak);
- every other step took effect at least once;
- nothing started after its run's last step ended;
- no edge was broken: no execution of a step started before each of its needs had taken effect.

``ORCH_NEMESIS_RUNS`` (default 120) and ``ORCH_NEMESIS_SECONDS`` (default 45) size it; ``make soak``
runs a longer one. The figures go to ``ORCH_NEMESIS_RESULTS`` (default
``$TMPDIR/orchestrator-nemesis.json``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.unit import STEP_TASK, StepMessage, Unit
from tests.integration.conftest import RedisServer, WorkerProcess
from tests.reliability.conftest import Harness
from tests.reliability.proxy import TcpProxy
from tests.reliability.tasks import nemesis_key

pytestmark = [pytest.mark.integration, pytest.mark.nemesis]

RUNS = int(os.environ.get("ORCH_NEMESIS_RUNS", "120"))
SECONDS = float(os.environ.get("ORCH_NEMESIS_SECONDS", "45"))
SEED = int(os.environ.get("ORCH_NEMESIS_SEED") or random.SystemRandom().randrange(1 << 32))
RESULTS = Path(os.environ.get("ORCH_NEMESIS_RESULTS") or Path(tempfile.gettempdir()) / "orchestrator-nemesis.json")
NODES = 3
ITEMS = 4
KEYED = ("seed", "join", "final")  # plus every fan item
KILL_WINDOW = 10.0
"""Seconds between an effect and the SIGKILL of its process within which the kill explains a repeat."""
EDGES = (("seed", "fan"), ("seed", "side"), ("fan", "join"), ("side", "join"), ("join", "final"))


def _effect(step: str, **args: Any) -> dict[str, Any]:
    return {"task": "n.effect", "args": {"key": "${run.id}:" + step, **args}}


WORKFLOW: dict[str, Any] = {
    "workflow": "nemesis",
    "defaults": {"retry": {"max_attempts": 4, "backoff": "fixed", "delay": "100ms", "on": ["ConnectionError"]}},
    "steps": {
        "seed": {**_effect("seed", sleep=0.05, value=list(range(ITEMS))), "idempotency_key": "${run.id}-seed"},
        "fan": {
            "task": "n.effect",
            "needs": ["seed"],
            "for_each": "${steps.seed.output}",
            "args": {"key": "${run.id}:fan:${item}", "sleep": 0.1, "value": "${item}"},
            "idempotency_key": "${run.id}-fan-${item}",
        },
        "side": {**_effect("side", sleep=0.05, fail_first=2), "needs": ["seed"]},  # at least once, no key
        "join": {**_effect("join"), "needs": ["fan", "side"], "idempotency_key": "${run.id}-join"},
        "final": {
            **_effect("final"),
            "needs": ["join"],
            "trigger_rule": "all_done",
            "idempotency_key": "${run.id}-final",
        },
    },
}


@dataclass
class Nemesis:
    """Injects one fault at a time, at random moments, until told to stop."""

    orchestra: Harness
    redis: RedisServer
    proxy: TcpProxy
    nodes: list[WorkerProcess]
    runs: list[str]
    rng: random.Random
    faults: Counter[str] = field(default_factory=Counter)
    killed: list[tuple[int, float]] = field(default_factory=list)
    """(pid, when) of every process the nemesis SIGKILLed."""
    stopped: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        kinds: list[tuple[str, Callable[[], None]]] = [
            ("node SIGKILL", self.kill_node),
            ("prefork child SIGKILL", self.kill_child),
            ("Redis restart", self.restart_redis),
            ("broker connection cut", self.cut_broker),
            ("duplicate messages", self.duplicate),
            ("stale messages", self.stale),
        ]
        while not self.stopped.wait(self.rng.uniform(0.5, 2.5)):
            name, fault = self.rng.choice(kinds)
            try:
                fault()
                self.faults[name] += 1
            except Exception as exc:  # a fault may meet another one (Redis down while duplicating)
                print(f"[nemesis] {name} did not apply: {type(exc).__name__}: {exc}")

    def kill_node(self) -> None:
        with self.lock:
            victim = self.rng.choice(self.nodes)
            pids = [victim.process.pid, *victim.children()]
            victim.kill()
            self.killed += [(pid, time.time()) for pid in pids]
            self.nodes.remove(victim)
            self.nodes.append(self.orchestra.worker(name=f"n{len(self.orchestra.workers)}", concurrency=2))

    def kill_child(self) -> None:
        with self.lock:
            children = [pid for node in self.nodes for pid in node.children()]
        if children:
            pid = self.rng.choice(children)
            os.kill(pid, signal.SIGKILL)
            self.killed.append((pid, time.time()))

    def restart_redis(self) -> None:
        self.redis.kill()
        time.sleep(self.rng.uniform(0.2, 2.0))
        self.redis.start()

    def cut_broker(self) -> None:
        self.proxy.cut()
        time.sleep(self.rng.uniform(0.5, 4.0))
        self.proxy.start()

    def _units(self) -> list[tuple[str, str, int | None]]:
        """Some units of runs submitted so far (steps, and items of their fan-out)."""
        picked = self.rng.sample(self.runs, min(5, len(self.runs)))
        units: list[tuple[str, str, int | None]] = []
        for run_id in picked:
            units += [(run_id, step, None) for step in WORKFLOW["steps"]]
            units += [(run_id, "fan", i) for i in range(ITEMS)]
        return units

    def _send(self, run_id: str, step: str, item: int | None, attempt: int) -> None:
        plan_id = self.orchestra.store.runs.plan_of(run_id)[0].plan_id
        message = StepMessage.of(Unit(run_id, step, item), plan_id, attempt=max(attempt, 1))
        self.orchestra.app.send_task(STEP_TASK, kwargs=message.kwargs(), queue="default", ignore_result=True)

    def duplicate(self) -> None:
        """Copies of messages for the current attempt of some units (queued, running or ended)."""
        store = self.orchestra.store
        for run_id, step, item in self.rng.sample(self._units(), 6):
            attempts = store.redis.hget(store.keys.unit(Unit(run_id, step, item)), "attempts")
            self._send(run_id, step, item, int(attempts or 1))

    def stale(self) -> None:
        """Messages for attempts that are over (and for items beyond the fan-out)."""
        store = self.orchestra.store
        for run_id, step, item in self.rng.sample(self._units(), 6):
            attempts = int(store.redis.hget(store.keys.unit(Unit(run_id, step, item)), "attempts") or 1)
            self._send(run_id, step, item, attempts - 1)
        run_id = self.rng.choice(self.runs)
        self._send(run_id, "fan", ITEMS + self.rng.randrange(3), 1)  # never fanned out: dead-lettered


@dataclass
class Evidence:
    """What the tasks recorded: effect counts and the start and end times of every execution."""

    effects: dict[str, int]
    starts: dict[str, list[float]]
    ends: dict[str, list[float]]
    enders: dict[str, list[tuple[float, int]]]
    """Key -> (when, pid) of each execution that took the effect."""

    @classmethod
    def read(cls, orchestra: Harness) -> Evidence:
        client, prefix = orchestra.redis, orchestra.prefix  # the shared test Redis: faults never touch it
        effects = {k: int(v) for k, v in client.hgetall(nemesis_key(prefix, "effects")).items()}
        starts: dict[str, list[float]] = defaultdict(list)
        ends: dict[str, list[float]] = defaultdict(list)
        enders: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for line in client.lrange(nemesis_key(prefix, "log"), 0, -1):
            kind, key, at, pid = line.split(" ")
            (starts if kind == "start" else ends)[key].append(float(at))
            if kind == "end":
                enders[key].append((float(at), int(pid)))
        return cls(effects, dict(starts), dict(ends), dict(enders))

    def check(self, runs: list[str], killed: list[tuple[int, float]]) -> tuple[dict[str, list[str]], list[str]]:
        """Every violation by rule (all empty: the soak passed), and the repeats a kill explains."""
        broken: dict[str, list[str]] = defaultdict(list)
        explained: list[str] = []
        for run in runs:
            keyed = [f"{run}:{s}" for s in KEYED] + [f"{run}:fan:{i}" for i in range(ITEMS)]
            if f"{run}:final" not in self.effects:
                broken["unfinished"].append(run)
            for key in keyed:
                count = self.effects.get(key, 0)
                if count == 0:
                    broken["lost"].append(f"{key}: 0")
                elif count > 1 and self._killed_before_its_record(key, killed):
                    explained.append(key)
                elif count > 1:
                    broken["repeated"].append(f"{key}: {count}")
            if self.effects.get(f"{run}:side", 0) < 1:
                broken["lost"].append(f"{run}:side: 0")
            self._check_order(run, broken)
        return dict(broken), explained

    def _killed_before_its_record(self, key: str, killed: list[tuple[int, float]]) -> bool:
        """Whether every execution but the last that took this effect was SIGKILLed right after it.

        Such an execution died between its effect and the record of its output: the record shows
        the key as taken by a dead execution, so the recovered one performs the effect again.
        """
        *earlier, _ = sorted(self.enders.get(key, []))
        return bool(earlier) and all(
            any(pid == victim and 0 <= at - ended <= KILL_WINDOW for victim, at in killed) for ended, pid in earlier
        )

    def _keys(self, run: str, step: str) -> list[str]:
        return [f"{run}:fan:{i}" for i in range(ITEMS)] if step == "fan" else [f"{run}:{step}"]

    def _check_order(self, run: str, broken: dict[str, list[str]]) -> None:
        ended = min(self.ends.get(f"{run}:final", [float("inf")]))
        for key in (k for k in self.starts if k.startswith(f"{run}:")):
            if max(self.starts[key]) > ended:
                broken["after its run ended"].append(key)
        for need, step in EDGES:
            done = max(min(self.ends.get(k, [float("inf")])) for k in self._keys(run, need))
            for key in self._keys(run, step):
                if key in self.starts and min(self.starts[key]) < done:
                    broken["edge broken"].append(f"{need} -> {key}")


@pytest.mark.timeout(SECONDS * 4 + 420)
def test_nemesis_soak(harness: Callable[..., Harness], redis_server: Callable[..., RedisServer]) -> None:
    print(f"\n[nemesis] seed {SEED} (replay: ORCH_NEMESIS_SEED={SEED}), {RUNS} runs, {SECONDS:g}s of faults")
    rng = random.Random(SEED)
    private = redis_server("--appendonly", "yes", "--appendfsync", "always")
    with TcpProxy("127.0.0.1", private.port) as proxy:
        orchestra = harness(broker_url=proxy.url(0), store_url=private.url)
        nodes = [orchestra.worker(name=f"n{i}", concurrency=2) for i in range(NODES)]
        runs: list[str] = []
        nemesis = Nemesis(orchestra, private, proxy, nodes, runs, rng)
        thread = threading.Thread(target=nemesis.run, name="nemesis", daemon=True)
        started = time.monotonic()
        workflow = orchestra.workflow(WORKFLOW)
        for index in range(RUNS):
            while True:
                try:
                    runs.append(orchestra.coordinator.submit(workflow).run_id)
                    break
                except Exception:  # the store or the broker is down right now: a client retries
                    time.sleep(0.2)
            if index == 10:
                thread.start()
            time.sleep(max(0.0, SECONDS * 0.7 / RUNS))
        while time.monotonic() - started < SECONDS:
            time.sleep(0.5)
        nemesis.stopped.set()
        thread.join(60)
        healed = time.monotonic()
        if private.process is None or private.process.poll() is not None:
            private.start()
        records = [orchestra.wait(run_id, timeout=300) for run_id in runs]
        finished = time.monotonic()

    evidence = Evidence.read(orchestra)
    broken, explained = evidence.check(runs, nemesis.killed)
    statuses = Counter(r.status.value for r in records)
    executions = sum(len(v) for v in evidence.starts.values())
    effects = sum(evidence.effects.values())
    summary = {
        "seed": SEED,
        "runs": RUNS,
        "statuses": dict(statuses),
        "faults": dict(nemesis.faults),
        "executions": executions,
        "effects": effects,
        "lost": len(broken.get("lost", [])),
        "repeated": len(broken.get("repeated", [])),
        "repeated_by_a_kill_between_effect_and_record": len(explained),
        "unfinished": len(broken.get("unfinished", [])),
        "after_run_ended": len(broken.get("after its run ended", [])),
        "edges_broken": len(broken.get("edge broken", [])),
        "seconds_of_faults": round(healed - started, 1),
        "seconds_to_finish_after_healing": round(finished - healed, 1),
        "dead_letters": len(orchestra.store.dead_letters.list(10_000)),
    }
    print("[nemesis] " + json.dumps(summary))
    RESULTS.write_text(json.dumps(summary, indent=1) + "\n")
    for record in records:
        if record.status.value != "succeeded":
            print(
                f"[nemesis] run {record.run_id} {record.status.value}: "
                + json.dumps(
                    {
                        n: [s.status.value, s.attempts, s.error.model_dump() if s.error else None]
                        for n, s in record.steps.items()
                    }
                )
            )
    for rule, keys in broken.items():
        print(f"[nemesis] {rule}: {keys[:10]}")
    assert sum(nemesis.faults.values()) >= 5, "the nemesis hardly struck"
    assert broken == {}, f"seed {SEED}: {json.dumps({k: v[:5] for k, v in broken.items()})}\n{orchestra.logs()}"
    assert statuses == {"succeeded": RUNS}
