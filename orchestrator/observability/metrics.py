"""Prometheus metrics, defined once: the API's requests, runs, steps, dispatch and dead letters.

Label values are bounded: a route's template (``/v1/runs/{run_id}``), never the path a caller
sent; a workflow, step, trigger, status, queue or reason name, never a token, a param or a run id.
The gauges of what Redis holds (queue depth, run store size) are read at scrape time by
:class:`~orchestrator.observability.backlog.BacklogCollector`, not kept here.

Workers run these in prometheus-client's multiprocess mode (:mod:`workers.metrics`): every metric
that a worker records has labels, so its values are made per label set, after the mode is chosen.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

API_REQUESTS = Counter(
    "orchestrator_api_requests",
    "HTTP requests the API answered, by route template, method and status.",
    ["route", "method", "status"],
)
API_LATENCY = Histogram(
    "orchestrator_api_request_seconds",
    "Seconds the API took to answer, by route template.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
WEBHOOK_DELIVERIES = Counter(
    "orchestrator_webhook_deliveries",
    "Verified webhook deliveries by hook (a name some workflow binds) and outcome: started, repeated, filtered.",
    ["hook", "outcome"],
)

RUNS_STARTED = Counter(
    "orchestrator_runs_started",
    "Runs submitted (a repeated idempotency key starts none), by workflow and trigger.",
    ["workflow", "trigger"],
)
RUNS_FINISHED = Counter(
    "orchestrator_runs_finished",
    "Runs that ended, by workflow and final status (succeeded, failed).",
    ["workflow", "status"],
)
RUNS_CANCELLED = Counter("orchestrator_runs_cancelled", "Runs cancelled, by workflow.", ["workflow"])
STEP_DURATION = Histogram(
    "orchestrator_step_duration_seconds",
    "Seconds one attempt of a step (or for_each item) ran on a worker, by how it ended: succeeded, failed, retrying.",
    ["workflow", "step", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600),
)
STEP_RETRIES = Counter(
    "orchestrator_step_retries",
    "Attempts that failed with a retryable error and were scheduled again, by workflow and step.",
    ["workflow", "step"],
)
STEP_RECOVERIES = Counter(
    "orchestrator_step_recoveries",
    "Steps re-dispatched because their lease expired (their worker died, or a publish was lost).",
    ["workflow", "step"],
)
DISPATCH_LAG = Histogram(
    "orchestrator_dispatch_lag_seconds",
    "Seconds from a step message being due (published, plus its retry countdown) to its step starting.",
    ["workflow"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
DEAD_LETTERS = Counter(
    "orchestrator_dead_letters",
    "Messages moved to the dead-letter queue, by reason (undecodable, unknown_task, invalid_task, "
    "unknown_message, invalid_message).",
    ["reason"],
)
SCHEDULE_TICKS = Counter(
    "orchestrator_schedule_ticks",
    "Schedule wake-ups that decided their ticks, by workflow and outcome: started, skipped (overlap).",
    ["workflow", "outcome"],
)

QUEUE_DEPTH = "orchestrator_queue_depth"
"""Gauge (read at scrape time): messages waiting in a queue, all of its priority lists together."""
STORE_KEYS = "orchestrator_store_keys"
"""Gauge (read at scrape time): keys in the run store's Redis database."""
STORE_MEMORY = "orchestrator_store_memory_bytes"
"""Gauge (read at scrape time): memory the run store's Redis uses."""
DEAD_LETTERS_HELD = "orchestrator_dead_letters_held"
"""Gauge (read at scrape time): dead letters kept, waiting for replay or deletion."""
RETENTION_DUE = "orchestrator_retention_due_runs"
"""Gauge (read at scrape time): finished runs whose retention is over, not yet removed by the janitor."""
HISTORY_BACKLOG = "orchestrator_history_backlog_runs"
"""Gauge (read at scrape time): finished runs waiting for the exporter to write them to the history."""
HISTORY_BACKLOG_AGE = "orchestrator_history_backlog_age_seconds"
"""Gauge (read at scrape time): how long the oldest run waiting for the history has waited (0: none)."""
BACKLOG_UP = "orchestrator_backlog_up"
"""Gauge (read at scrape time): 1 when the last read of Redis for the gauges above worked."""
