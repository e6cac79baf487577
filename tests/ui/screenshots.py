"""The README's screenshots of the web UI: ``python -m tests.ui.screenshots`` (or ``make screenshots``).

Starts what the browser tests start (a private ``redis-server``, a worker, ``orchestrator api``),
runs a demo shaped like ``examples/content-pipeline.yaml`` on the test tasks with some sleep, and
saves at 1280x800 in ``docs/img/``: ``run-running.png`` (the run page mid-run), ``run-finished.png``
(the same page once it has ended) and ``runs.png`` (the runs list). Every process it starts is
stopped by pid at the end.
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect, sync_playwright
from redis import Redis

from tests.api.conftest import NAMES, ApiServer, start_api
from tests.integration.conftest import ROOT, Orchestra, RedisServer, free_port
from tests.ui.conftest import VIEWPORT, chromium_path, launch

OUT = ROOT / "docs" / "img"
WORKFLOW = "content-pipeline"
ITEMS = ["intro", "setup", "deploy", "scale", "wrap-up"]
DEMO: dict[str, Any] = {
    "workflow": WORKFLOW,
    "version": 2,
    "description": "Fetch a feed, process it, render thumbnails per item, publish and report.",
    "params": {"source": {"type": "string", "default": "demo-feed"}, "limit": {"type": "integer", "default": 5}},
    "defaults": {
        "timeout": "5m",
        "retry": {"max_attempts": 3, "backoff": "exponential", "delay": "500ms", "on": ["ConnectionError"]},
    },
    "steps": {
        "fetch": {"task": "t.effect", "args": {"name": "${run.id}-fetch", "sleep": 1.5, "value": ITEMS}},
        "process": {
            "task": "t.effect",
            "needs": ["fetch"],
            "args": {"name": "${run.id}-process", "sleep": 4, "value": {"count": len(ITEMS)}},
        },
        "thumbnails": {
            "task": "t.effect",
            "needs": ["fetch"],
            "for_each": "${steps.fetch.output}",
            "args": {"name": "${run.id}-${item}", "sleep": 2.5, "value": "${item}.png"},
        },
        "publish": {
            "task": "t.flaky",
            "needs": ["process", "thumbnails"],
            "when": "${steps.process.output.count} > 0",
            "args": {"name": "${run.id}-publish", "failures": 1},
        },
        "report": {
            "task": "t.effect",
            "needs": ["publish"],
            "trigger_rule": "all_done",
            "args": {"name": "${run.id}-report", "sleep": 0.5},
        },
    },
}
SMALL: dict[str, Any] = {
    "workflow": "nightly-batch",
    "steps": {
        "extract": {"task": "t.effect", "args": {"name": "${run.id}-extract", "sleep": 0.5}},
        "load": {
            "task": "t.flaky",
            "needs": ["extract"],
            "args": {"name": "${run.id}-load", "failures": 9, "error": "ValueError"},
            "retry": {"max_attempts": 1},
        },
    },
}


def shoot(page: Page, name: str) -> None:
    path = OUT / name
    page.screenshot(path=str(path))
    print(f"saved {path.relative_to(ROOT)}")  # noqa: T201


def capture(server: ApiServer, executable: str) -> None:
    """Submit the runs, then take the three pictures."""
    with server.client() as client:
        for _ in range(2):
            client.wait(client.submit("nightly-batch").run_id)
        client.wait(client.submit(WORKFLOW, {"source": "yesterday"}).run_id, timeout=120)
        run_id = client.submit(WORKFLOW, {"source": "blog"}).run_id
        with sync_playwright() as playwright:
            browser = launch(playwright, executable)
            try:
                page = browser.new_context(viewport=VIEWPORT).new_page()  # type: ignore[arg-type]
                page.set_default_timeout(30_000)
                page.goto(f"{server.url}/ui/login")
                page.fill("input[name=token]", server.tokens["admin"])
                with page.expect_navigation():
                    page.click("form button[type=submit], form input[type=submit]")
                page.goto(f"{server.url}/ui/runs/{run_id}")
                thumbnails = page.locator("svg[data-testid=dag] g[data-step=thumbnails]")
                expect(thumbnails).to_have_attribute("data-status", "running")
                # Some items done, some running: the picture shows the mix.
                expect(thumbnails.locator("[data-field=items]")).not_to_have_text("0/5 items")
                time.sleep(0.3)
                shoot(page, "run-running.png")
                assert client.wait(run_id, timeout=120).status.finished
                expect(page.locator("svg[data-testid=dag] g[data-step=report]")).to_have_attribute(
                    "data-status", "succeeded"
                )
                expect(page.locator("ol[data-testid=events] li").last).to_contain_text("finished")
                page.locator("svg[data-testid=dag] g[data-step=publish]").click()
                expect(page.locator("section[data-testid=step-detail]")).to_be_visible()
                # The step's detail at the top: its two attempts, and the timeline below it.
                page.locator("section[data-testid=step-detail]").evaluate("e => e.scrollIntoView()")
                time.sleep(0.5)
                shoot(page, "run-finished.png")
                page.goto(f"{server.url}/ui/runs")
                expect(page.locator(f"table[data-testid=runs] tr[data-run-id='{run_id}']")).to_be_visible()
                shoot(page, "runs.png")
            finally:
                browser.close()


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    executable = chromium_path()
    if executable is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="orch-screenshots-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "redis").mkdir()
        redis_server = RedisServer(free_port(), tmp / "redis", ()).start()
        redis = Redis.from_url(redis_server.url, decode_responses=True)
        workflows = tmp / "workflows"
        workflows.mkdir()
        for body in (DEMO, SMALL):
            (workflows / f"{body['workflow']}.json").write_text(json.dumps(body), encoding="utf-8")
        orchestra = Orchestra(redis_server.url, "screenshots", tmp, redis)
        server: ApiServer | None = None
        try:
            orchestra.worker(concurrency=4)
            server = start_api(orchestra, workflows, {scope: secrets.token_urlsafe(16) for scope in NAMES})
            capture(server, executable)
        finally:
            if server is not None:
                server.stop()
            for worker in orchestra.workers:
                worker.kill()
            orchestra.close()
            redis.close()
            redis_server.kill()


if __name__ == "__main__":
    main()
