"""The run store on a Redis Cluster next to the same store on one Redis: steps/s, submits/s, commands.

Run from the repository root::

    python3 -m bench.cluster                # 20 chains of 50 no-op steps, 3 rounds
    python3 -m bench.cluster --scale 0.5    # a quicker run

Three systems of ours, side by side in each round, each with one worker node of ``--concurrency``
prefork processes and Celery's broker on the benchmark's private Redis:

- ``one Redis``: the store is the broker's database (the default deployment): a completion
  pushes its dependents' messages itself (two round trips a step);
- ``one Redis, apart``: the store in another database of the same server, so the worker publishes
  the dependents itself, as it must when the store is a cluster (kombu cannot use one);
- ``cluster``: the store on a local Redis Cluster of 3 masters with a replica each
  (:mod:`orchestrator.dev.cluster`), ``ORCH_STORE_SHARDS`` shards.

Figures: step throughput of the chains workflow (``bench.throughput``'s shape), submits per second
of a one-step workflow from one client (``--submits``), and on the cluster the store's commands per
step from each master's ``INFO commandstats``, with each master's share (the shards' balance).
Every process here runs on the same machine: on 2 cores, the cluster's seven Redis processes
compete with the workers, so its ratio is a floor, not what separate machines would give.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis
from rich.table import Table

from bench.processes import Processes
from bench.report import Target, console, median, ratio, targets_table, write
from bench.systems import Ours, add_common_arguments
from bench.throughput import chains_workflow, run_ours
from orchestrator.dev.cluster import LocalCluster, local_cluster

APART_DB = 3
ONE_STEP: dict[str, Any] = {"workflow": "submits", "steps": {"only": {"task": "bench.noop"}}}


@dataclass
class Series:
    """One system's samples, one per round."""

    name: str
    steps: int
    seconds: list[float] = field(default_factory=list)
    submits_per_second: list[float] = field(default_factory=list)

    @property
    def steps_per_second(self) -> float:
        return median([self.steps / s for s in self.seconds])

    @property
    def submits(self) -> float:
        return median(self.submits_per_second)


def submit_rate(ours: Ours, count: int) -> float:
    """Submits per second of a one-step workflow from this process (the worker runs them meanwhile);
    returns once every run has finished."""
    workflow = ours.workflow(ONE_STEP)
    started = time.perf_counter()
    run_ids = [ours.coordinator.submit(workflow).run_id for _ in range(count)]
    rate = count / (time.perf_counter() - started)
    for run_id in run_ids:
        ours.wait(run_id, 300)
    return rate


def masters(cluster: LocalCluster) -> list[Redis]:
    return [node.client() for node in cluster.nodes if node.role() == "master"]


def calls(clients: list[Redis]) -> list[int]:
    """Commands each server has run (``INFO commandstats``), INFO itself left out."""
    totals = []
    for client in clients:
        stats = client.info("commandstats")
        totals.append(sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"))
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chains", type=int, default=20)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the number of chains")
    parser.add_argument("--submits", type=int, default=300, help="one-step runs submitted per round and system")
    parser.add_argument("--shards", type=int, default=16, help="ORCH_STORE_SHARDS of the cluster store")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    chains = max(1, round(args.chains * args.scale))
    total = chains * args.length
    out = console()
    names = ("one Redis", "one Redis, apart", "cluster")
    series = {name: Series(name, total) for name in names}
    per_step: list[float] = []
    per_master: Counter[int] = Counter()
    with (
        Processes(keep=args.keep) as processes,
        tempfile.TemporaryDirectory(prefix="orch-cluster-") as folder,
        local_cluster(Path(folder)) as cluster,
    ):
        env = {"ORCH_STORE_SHARDS": str(args.shards)}
        systems = {
            "one Redis": Ours(processes, prefix="one"),
            "one Redis, apart": Ours(processes, prefix="apart", store_url=processes.redis.url(APART_DB)),
            "cluster": Ours(processes, prefix="sharded", env=env, store_url=cluster.url),
        }
        for ours in systems.values():
            ours.worker(ours.prefix, args.concurrency, wait=False)
        for worker in processes.workers:
            worker.wait_ready()
        with out.status("warming up..."):
            for ours in systems.values():
                run_ours(ours, chains_workflow(2, 20))
        nodes = masters(cluster)
        for n in range(args.rounds):
            for name, ours in systems.items():
                with out.status(f"round {n + 1}/{args.rounds}: {name}"):
                    before = calls(nodes)
                    series[name].seconds.append(run_ours(ours, chains_workflow(chains, args.length)))
                    if name == "cluster":  # one run: all of it in one shard, on one master
                        per_step.append(sum(calls(nodes)) - sum(before))
                    before = calls(nodes)
                    series[name].submits_per_second.append(submit_rate(ours, args.submits))
                    if name == "cluster":  # many runs: spread over the shards
                        per_master.update(dict(enumerate(b - a for a, b in zip(before, calls(nodes), strict=True))))
        for ours in systems.values():
            ours.close()
        for client in nodes:
            client.close()

    one = series["one Redis"]
    table = Table(
        title=f"the store on a Redis Cluster (3 masters) vs one Redis: {total:,} no-op steps ({chains} chains "
        f"x {args.length}) and {args.submits} submits, 1 node x {args.concurrency} prefork, "
        f"median of {args.rounds} rounds"
    )
    for column in ("store", "seconds (each round)", "steps/s", "this / one Redis", "submits/s", "this / one Redis "):
        table.add_column(column, justify="right" if column != "store" else "left")
    for item in series.values():
        table.add_row(
            item.name,
            " ".join(f"{s:.2f}" for s in item.seconds),
            f"{item.steps_per_second:,.0f}",
            ratio(item.steps_per_second / one.steps_per_second),
            f"{item.submits:,.0f}",
            ratio(item.submits / one.submits),
        )
    out.print(table)
    commands = sum(per_master.values())
    shares = [per_master[i] / commands for i in sorted(per_master)] if commands else []
    step_commands = median(per_step) / total if per_step else 0.0
    out.print(
        f"cluster store: {step_commands:.2f} commands per step of the chains (Redis's commandstats: a script's own "
        f"calls counted), all on the master of the run's shard; {args.submits} one-step runs spread their "
        f"commands over the masters {' / '.join(f'{s:.0%}' for s in shares)}"
    )
    apart = series["one Redis, apart"].steps_per_second / one.steps_per_second
    sharded = series["cluster"].steps_per_second / series["one Redis, apart"].steps_per_second
    balance = (max(shares) - min(shares)) if shares else 1.0
    targets = [
        Target("shards' balance", "largest minus smallest master share <= 0.15", balance, balance <= 0.15),
    ]
    out.print(targets_table(targets))
    path = write(
        "cluster",
        argv if argv is not None else [],
        {
            "chains": chains,
            "length": args.length,
            "steps": total,
            "submits": args.submits,
            "shards": args.shards,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "series": [
                asdict(s) | {"steps_per_second": s.steps_per_second, "submits_median": s.submits}
                for s in series.values()
            ],
            "cluster_commands_per_step": step_commands,
            "cluster_master_shares": shares,
            "ratios": {"apart/one": apart, "cluster/apart": sharded, "cluster/one": sharded * apart},
        },
        targets,
    )
    out.print(f"written to {path}")
    return 0 if all(t.met for t in targets) else 1


if __name__ == "__main__":
    raise SystemExit(main())
