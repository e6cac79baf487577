"""The history's list queries over 1,000,000 runs: every filter of ``runs`` / ``GET /v1/runs``, under 50 ms.

Run from the repository root, with PostgreSQL on 127.0.0.1:5432 (trust auth; ``.ci/services``
starts it)::

    python3 -m bench.history                 # 1,000,000 runs
    python3 -m bench.history --scale 0.1     # 100,000 runs
    python3 -m bench.history --url postgresql://postgres@127.0.0.1:5432/postgres

It makes a database of its own (dropped at the end), migrates it with the project's Alembic
migrations, inserts the runs in one ``INSERT ... SELECT FROM generate_series`` (50 workflows;
85% succeeded, 10% failed, 5% cancelled; five triggers; 20 API tokens and 5 CLI users as actors
besides the schedules', webhooks' and sensors' own, drawn independently; one actor,
``token:reporting``, with 1% of the runs and never a failure, for the worst case of a filter
that matches nothing; creation times over 90 days), then ANALYZEs.
Each query is the SQL :func:`orchestrator.history.reader.page_query` builds, for a first page of
20 and for a page deep in the list (its keyset cursor 2,000 runs in). Figures: PostgreSQL's
execution time from ``EXPLAIN (ANALYZE, BUFFERS)``, the index it used, and the median and worst
wall time of :meth:`PostgresHistory.listed` (Python, the round trip and parsing the rows) over
``--repeat`` calls. Target: every query's wall time under 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from rich.table import Table
from sqlalchemy import Engine, text
from sqlalchemy.dialects import postgresql

from bench.report import Target, console, write
from orchestrator.engine.ports import RunQuery
from orchestrator.engine.records import RunStatus, Trigger
from orchestrator.history import schema
from orchestrator.history.database import history_engine
from orchestrator.history.reader import PostgresHistory, page_query

DAYS = 90
TARGET_MS = 50.0
DEEP = 2000
"""How far into the list the deep page's cursor is."""

FILL = """
INSERT INTO runs (run_id, workflow, version, status, trigger, started_by, params, created, created_at,
                  logical_date, started_at, finished_at, definition_hash, epoch)
SELECT md5(i::text),
       'wf-' || (i % 50),
       1,
       CASE WHEN i % 97 = 0 OR r.s < 17 THEN 'succeeded' WHEN r.s < 19 THEN 'failed' ELSE 'cancelled' END,
       t.trigger,
       CASE t.trigger
         WHEN 'api' THEN CASE WHEN i % 97 = 0 THEN 'token:reporting' ELSE 'token:svc-' || r.a END
         WHEN 'cli' THEN 'user:ops-' || (r.a % 5)
         WHEN 'schedule' THEN 'schedule:nightly@' || to_char(c.at, 'YYYY-MM-DD"T"HH24:MI')
         WHEN 'webhook' THEN 'hook:orders/' || md5('d' || i)
         ELSE 'sensor:wf-' || (i % 50)
       END,
       json_build_object('n', i),
       extract(epoch FROM c.at),
       c.at,
       NULL,
       c.at + interval '1 second',
       c.at + interval '30 seconds',
       'd41d8cd98f00b204e9800998ecf8427e',
       0
FROM generate_series(1, :count) AS i,
     LATERAL (SELECT now() - (:days * interval '1 day') * ((:count - i)::float / :count)
                     + (random() * interval '1 second') AS at) AS c,
     LATERAL (SELECT abs(hashtext('s' || i)) % 20 AS s, abs(hashtext('a' || i)) % 20 AS a) AS r,
     LATERAL (SELECT CASE WHEN i % 97 = 0 THEN 'api'
                          ELSE (ARRAY['api', 'api', 'api', 'api', 'schedule', 'schedule', 'schedule', 'webhook',
                                      'webhook', 'cli', 'sensor'])[1 + abs(hashtext('t' || i)) % 11]
                     END AS trigger) AS t
"""


@dataclass(frozen=True)
class Case:
    name: str
    query: RunQuery


def cases(now: float) -> list[Case]:
    day = 86400.0
    return [
        Case("all runs", RunQuery()),
        Case("workflow", RunQuery(workflow="wf-7")),
        Case("status failed", RunQuery(status=RunStatus.FAILED)),
        Case("trigger webhook", RunQuery(trigger=Trigger.WEBHOOK)),
        Case("actor token:svc-7", RunQuery(actor="token:svc-7")),
        Case("workflow + failed", RunQuery(workflow="wf-7", status=RunStatus.FAILED)),
        Case("workflow + last 24 h", RunQuery(workflow="wf-7", since=now - day)),
        Case("30 to 29 days ago", RunQuery(since=now - 30 * day, until=now - 29 * day)),
        Case("failed + actor", RunQuery(status=RunStatus.FAILED, actor="token:svc-3")),
        Case("failed + actor: none match", RunQuery(status=RunStatus.FAILED, actor="token:reporting")),
        Case("cancelled + sensor (0.5%)", RunQuery(status=RunStatus.CANCELLED, trigger=Trigger.SENSOR)),
        Case("workflow + webhook + 7 days", RunQuery(workflow="wf-9", trigger=Trigger.WEBHOOK, since=now - 7 * day)),
        Case("workflow + actor", RunQuery(workflow="wf-1", actor="token:svc-2")),
        Case("trigger + status (0.9%)", RunQuery(trigger=Trigger.CLI, status=RunStatus.FAILED)),
        Case("status + actor: none match", RunQuery(status=RunStatus.CANCELLED, actor="user:nobody")),
    ]


def sql(query: RunQuery) -> str:
    """The reader's SQL with its parameters inlined (for EXPLAIN)."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    compiled = page_query(query).compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return str(compiled)


def explain(engine: Engine, query: RunQuery) -> tuple[float, str, int]:
    """Execution ms, the indexes used, and the rows returned, from EXPLAIN ANALYZE."""
    with engine.connect() as connection:
        plan = connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql(query)}")).scalar_one()
    top = plan[0]
    indexes: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if "Index Name" in node:
            indexes.append(node["Index Name"].removeprefix("ix_runs_"))
        for child in node.get("Plans", []):
            walk(child)

    walk(top["Plan"])
    return (
        float(top["Execution Time"]),
        ", ".join(dict.fromkeys(indexes)) or "seq scan",
        int(top["Plan"]["Actual Rows"]),
    )


def deep(reader: PostgresHistory, query: RunQuery) -> RunQuery:
    """The same query with its cursor ``DEEP`` runs into the list (or at its end, for a shorter one)."""
    cursor = None
    walked = 0
    while walked < DEEP:
        page = reader.listed(RunQuery(**{**query.__dict__, "limit": 500, "after": cursor}))
        if not page:
            break
        walked += len(page)
        cursor = page[-1].key.cursor()
    return RunQuery(**{**query.__dict__, "after": cursor})


def timed(reader: PostgresHistory, query: RunQuery, repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        reader.listed(query)
        seconds.append(time.perf_counter() - started)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --runs (quick runs: 0.1)")
    parser.add_argument("--repeat", type=int, default=30, help="calls per query for the wall times")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres", help="a server to use")
    args = parser.parse_args(argv)
    count = max(1000, round(args.runs * args.scale))
    out = console()
    name = f"orch_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(args.url, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    engine = history_engine(f"postgresql://{admin.info.user}@{admin.info.host}:{admin.info.port}/{name}")
    try:
        schema.upgrade(engine)
        with out.status(f"inserting {count:,} runs"):
            started = time.perf_counter()
            with engine.begin() as connection:
                connection.execute(text(FILL), {"count": count, "days": DAYS})
            fill_seconds = time.perf_counter() - started
            with engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE runs"))
        reader = PostgresHistory(engine)
        now = time.time()
        rows: list[dict[str, Any]] = []
        for case in cases(now):
            for depth, query in (("first", case.query), (f"+{DEEP}", deep(reader, case.query))):
                timed(reader, query, 3)  # warm the cache: the figures are of a server that has the index in memory
                executed, indexes, returned = explain(engine, query)
                walls = timed(reader, query, args.repeat)
                rows.append(
                    {
                        "query": case.name,
                        "page": depth,
                        "rows": returned,
                        "index": indexes,
                        "execution_ms": executed,
                        "wall_median_ms": statistics.median(walls) * 1000,
                        "wall_max_ms": max(walls) * 1000,
                    }
                )
    finally:
        engine.dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    table = Table(title=f"history list queries over {count:,} runs (page of 20; wall: {args.repeat} calls)")
    for column in ("query", "page", "rows", "index", "exec ms", "wall median ms", "wall max ms"):
        table.add_column(column, justify="left" if column in ("query", "page", "index") else "right")
    for row in rows:
        table.add_row(
            row["query"], row["page"], str(row["rows"]), row["index"], f"{row['execution_ms']:.2f}",
            f"{row['wall_median_ms']:.2f}", f"{row['wall_max_ms']:.2f}",
        )  # fmt: skip
    out.print(table)
    slowest = max(row["wall_max_ms"] for row in rows)
    targets = [Target("slowest list query (wall, worst call)", f"< {TARGET_MS:g} ms", slowest, slowest < TARGET_MS)]
    path = write(
        "history",
        argv if argv is not None else sys.argv[1:],
        {"runs": count, "fill_seconds": fill_seconds, "page": 20, "deep": DEEP, "queries": rows},
        targets,
    )
    out.print(f"inserted {count:,} runs in {fill_seconds:.1f} s; slowest query {slowest:.1f} ms; written to {path}")
    return 0 if all(t.met for t in targets) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
