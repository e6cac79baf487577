"""Sentry, offline: a local HTTP server stands in for Sentry and real workers report to it.

The stand-in decodes every envelope (a JSON header line, then per item a JSON header line and its
payload). The tests assert what reaches it: one event per final step failure (none for retries),
with the run's tags and one fingerprint per step, Crons check-ins of scheduled runs, and no secret
of the settings, no deny-listed param and no output anywhere in the bytes received.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator.definition.models import Schedule
from orchestrator.observability.scrubbing import FILTERED, Scrubber
from orchestrator.observability.sentry import check_in_id, monitor_config, monitor_slug, schedule_name
from orchestrator.triggers.schedules import START_RUN_TASK

try:
    import brotli
except ImportError:  # the SDK sends brotli only when it is installed
    brotli = None

Item = tuple[dict[str, Any], dict[str, Any]]


class SentryStandIn:
    """An HTTP server on a free port that keeps every envelope POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    raw = gzip.decompress(raw)
                elif encoding == "br":
                    assert brotli is not None
                    raw = brotli.decompress(raw)
                with stand_in.lock:
                    stand_in.bodies.append(raw)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.server.server_address[1]}/1"

    def items(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            bodies = list(self.bodies)
        return [payload for body in bodies for header, payload in parse_envelope(body) if header.get("type") == kind]

    def wait(self, what: str, ready: Callable[[], bool], timeout: float = 45.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not received after {timeout}s; got {self.items('event')}")
            time.sleep(0.1)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def parse_envelope(raw: bytes) -> list[Item]:
    """The items of one envelope: each item header with its payload (parsed JSON)."""
    header_line, _, rest = raw.partition(b"\n")
    json.loads(header_line)
    items: list[Item] = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        if not line.strip():
            continue
        header = json.loads(line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] :].removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        try:
            items.append((header, json.loads(payload)))
        except ValueError:
            items.append((header, {}))
    return items


@pytest.fixture
def sentry() -> Iterator[SentryStandIn]:
    stand_in = SentryStandIn()
    yield stand_in
    stand_in.close()


SECRETS = {
    "api token": "tok-Q7f3kZ9api",
    "webhook secret": "whsec-M2p8xL4hook",
    "flower password": "flw-R5t1nV6pass",
    "redis password": "redis-W9c2bH3pw",
    "password param": "pw-K4d8sJ1param",
    "output token": "out-T6g5hN2token",
}


def sentry_env(sentry: SentryStandIn, redis_url: str, workflows: Path | None = None) -> dict[str, str]:
    with_password = redis_url.replace("redis://", f"redis://default:{SECRETS['redis password']}@")
    env = {
        "ORCH_SENTRY_DSN": sentry.dsn,
        "ORCH_SENTRY__ENVIRONMENT": "test",
        "ORCH_API_TOKENS": f"svc:{SECRETS['api token']}",
        "ORCH_WEBHOOK_SECRETS": f"orders:{SECRETS['webhook secret']}",
        "ORCH_FLOWER_BASIC_AUTH": f"admin:{SECRETS['flower password']}",
        "ORCH_BROKER_URL": with_password,
        "ORCH_STORE_URL": with_password,
        "ORCH_TASK_MODULES": "tests.integration.tasks,tests.observability.tasks",
    }
    if workflows is not None:
        env["ORCH_WORKFLOWS_DIR"] = str(workflows)
    return env


def assert_no_secrets(sentry: SentryStandIn) -> None:
    with sentry.lock:
        everything = b"\n".join(sentry.bodies)
    assert everything, "nothing reached the stand-in"
    leaked = [name for name, value in SECRETS.items() if value.encode() in everything]
    assert not leaked, f"these reached Sentry: {leaked}"


def failing_text(redis_url: str) -> str:
    """An exception message holding every secret of the settings (as a careless task's might)."""
    url = redis_url.replace("redis://", f"redis://default:{SECRETS['redis password']}@")
    return f"{SECRETS['api token']} {SECRETS['webhook secret']} admin:{SECRETS['flower password']} {url}"


def test_final_failures_are_one_issue_per_step_retries_report_nothing_and_no_secret_leaves(
    orchestra: Any, sentry: SentryStandIn, redis_url: str
) -> None:
    orchestra.extra_env.update(sentry_env(sentry, redis_url))
    orchestra.worker()
    suffix = uuid.uuid4().hex[:8]
    retried = {
        "workflow": f"retried-{suffix}",
        "defaults": {"retry": {"max_attempts": 2, "delay": "100ms", "jitter": False}},
        "steps": {"a": {"task": "t.flaky", "args": {"name": f"retry-{suffix}", "failures": 1}}},
    }
    broken = {
        "workflow": f"broken-{suffix}",
        "params": {"password": {"type": "string"}},
        "steps": {
            "out": {
                "task": "t.effect",
                "args": {"name": f"out-{suffix}", "value": {"api_token": SECRETS["output token"]}},
            },
            "say": {"task": "s.log_error", "args": {"text": "hello from a step"}},
            "a": {
                "task": "t.flaky",
                "needs": ["out"],
                "args": {
                    "name": f"boom ${{params.password}} {failing_text(redis_url)}",
                    "failures": 99,
                    "error": "ValueError",
                },
            },
        },
        "on_failure": {"task": "s.leaky_hook"},
    }
    ok_run = orchestra.submit(retried)
    assert orchestra.wait(ok_run).status.value == "succeeded"
    runs = [orchestra.submit(broken, {"password": SECRETS["password param"]}) for _ in range(2)]
    for run_id in runs:
        assert orchestra.wait(run_id).status.value == "failed"

    def events(**tags: str) -> list[dict[str, Any]]:
        return [e for e in sentry.items("event") if tags.items() <= (e.get("tags") or {}).items()]

    sentry.wait("two failures, two step logs, two hook logs", lambda: len(events(workflow=broken["workflow"])) >= 4)
    time.sleep(1.0)  # anything else would have arrived by now
    assert events(workflow=retried["workflow"]) == [] and events(run_id=ok_run) == []

    failures = events(workflow=broken["workflow"], step="a")
    assert sorted(e["tags"]["run_id"] for e in failures) == sorted(runs)  # exactly once per run
    for event in failures:
        assert event["fingerprint"] == [broken["workflow"], "a", "ValueError"]
        assert event["tags"]["attempt"] == "1" and event["tags"]["trigger"] == "cli"
        assert event["tags"]["celery_task_id"] and event["tags"]["component"] == "worker"
        [exception] = event["exception"]["values"]
        assert exception["type"] == "ValueError" and exception["stacktrace"]["frames"]
        assert FILTERED in exception["value"]
    logged = events(workflow=broken["workflow"], step="say")
    assert sorted(e["tags"]["run_id"] for e in logged) == sorted(runs)
    assert all("hello from a step" in json.dumps(e) for e in logged)
    hooks = [e for e in sentry.items("event") if "ended failed" in json.dumps(e)]
    assert len(hooks) == 2
    assert_no_secrets(sentry)


def test_scheduled_runs_check_in_when_submitted_and_when_they_end(
    orchestra: Any, sentry: SentryStandIn, redis_url: str, tmp_path: Path
) -> None:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "fine.yaml").write_text(
        "workflow: fine\nschedule:\n  - name: hourly\n    every: 1h\n"
        "steps:\n  a: {task: t.effect, args: {name: fine}}\n"
    )
    (workflows / "flop.yaml").write_text(
        "workflow: flop\nschedule:\n  - name: daily\n    every: 1d\n    timezone: Europe/Berlin\n"
        "steps:\n  a: {task: t.flaky, args: {name: flop, failures: 99, error: ValueError}}\n"
    )
    orchestra.extra_env.update(sentry_env(sentry, redis_url, workflows))
    orchestra.worker()
    orchestra.app.send_task(START_RUN_TASK, kwargs={"workflow": "fine", "schedule": "hourly"})
    orchestra.app.send_task(START_RUN_TASK, kwargs={"workflow": "flop", "schedule": "daily"})

    def closing() -> list[dict[str, Any]]:
        return [c for c in sentry.items("check_in") if c["status"] != "in_progress"]

    sentry.wait("two closing check-ins", lambda: len(closing()) >= 2)
    time.sleep(1.0)
    check_ins = sentry.items("check_in")
    by_slug: dict[str, list[dict[str, Any]]] = {}
    for check_in in check_ins:
        by_slug.setdefault(check_in["monitor_slug"], []).append(check_in)
    assert set(by_slug) == {"fine-hourly", "flop-daily"}  # and nothing for start_run itself
    expected = {"fine-hourly": "ok", "flop-daily": "error"}
    for slug, pair in by_slug.items():
        assert sorted(c["status"] for c in pair) == sorted(["in_progress", expected[slug]])
        assert len({c["check_in_id"] for c in pair}) == 1
        [started] = [c for c in pair if c["status"] == "in_progress"]
        assert started["environment"] == "test"
        [ended] = [c for c in pair if c["status"] != "in_progress"]
        assert ended["duration"] is not None and ended["duration"] >= 0
    [flop_started] = [c for c in by_slug["flop-daily"] if c["status"] == "in_progress"]
    assert flop_started["monitor_config"] == {
        "schedule": {"type": "interval", "value": 1, "unit": "day"},
        "timezone": "Europe/Berlin",
    }
    assert_no_secrets(sentry)


# --- the pure parts ---------------------------------------------------------------------------


def test_scrubber_takes_out_deny_listed_keys_secrets_url_passwords_and_data() -> None:
    scrub = Scrubber(["password", "token"], ["s3cr3t-value"])
    event = {
        "message": "connect redis://user:hunter2@host:6379/0 and amqp://guest:guest@rabbit// with s3cr3t-value",
        "extra": {"Nested": [{"DB_Password": "x1"}, {"apiToken": 5}], "params": {"a": 1}, "output": [1]},
        "breadcrumbs": {"values": [{"message": "token s3cr3t-value", "data": {"AUTHORIZATION_TOKEN": "b"}}]},
    }
    out = scrub(event)
    assert out["message"] == (
        "connect redis://user:[Filtered]@host:6379/0 and amqp://guest:[Filtered]@rabbit// with [Filtered]"
    )
    assert out["extra"] == {
        "Nested": [{"DB_Password": FILTERED}, {"apiToken": FILTERED}],
        "params": FILTERED,
        "output": FILTERED,
    }
    assert out["breadcrumbs"]["values"][0] == {"message": "token [Filtered]", "data": {"AUTHORIZATION_TOKEN": FILTERED}}
    assert event["extra"]["params"] == {"a": 1}  # the input is not changed
    assert Scrubber([], [], send_data=True)({"params": {"a": 1}}) == {"params": {"a": 1}}
    assert scrub.denied_values({"user": "u", "password": "p", "deep": [{"token": 7}]}) == ["p", "7"]


def test_monitors_check_in_ids_and_schedule_names() -> None:
    assert monitor_slug("Content.Pipeline", "0 1 * * *") == "content-pipeline-0-1"
    long = monitor_slug("w" * 60, "nightly")
    assert len(long) <= 50 and long != monitor_slug("w" * 60, "hourly")
    assert check_in_id("run-1") == check_in_id("run-1") != check_in_id("run-2")
    assert schedule_name("schedule:nightly@2026-03-01T01:00:00+01:00") == "nightly"
    assert schedule_name("user:alice") is None and schedule_name(None) is None
    cron = Schedule(cron="0 1 * * *", timezone="Europe/Berlin")
    assert monitor_config(cron) == {"schedule": {"type": "crontab", "value": "0 1 * * *"}, "timezone": "Europe/Berlin"}
    assert monitor_config(Schedule(every=90))["schedule"] == {"type": "interval", "value": 2, "unit": "minute"}
    assert monitor_config(Schedule(every=7200))["schedule"] == {"type": "interval", "value": 2, "unit": "hour"}
