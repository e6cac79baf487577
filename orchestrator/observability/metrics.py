"""Prometheus metrics, defined once: the API's requests (workers' and runs' metrics join them here).

Label values are bounded: a route's template (``/v1/runs/{run_id}``), never the path a caller
sent, and never a token, a param or a run id.
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
