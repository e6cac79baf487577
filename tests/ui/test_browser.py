"""The web UI in a real browser: log in, watch runs live, inspect steps, cancel with the right scope, stay inert.

Each test drives headless Chromium against ``orchestrator api`` with a real worker (the ``api``
fixture) and writes the workflows it needs into the server's directory. Pages update by polling,
so every check waits (``expect``) rather than reloading; a test that says "without reload" marks
the page's ``window`` first and checks the mark is still there at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Locator, Page, expect

from orchestrator.engine.records import RunStatus
from tests.api.conftest import ApiServer
from tests.integration.tasks import HOSTILE
from tests.ui.conftest import Session, add_workflow, submit

pytestmark = pytest.mark.integration

Sessions = Callable[..., Session]


@pytest.fixture(scope="module", autouse=True)
def spare_worker(api: ApiServer) -> None:
    """A second worker: a cancelled run's ``t.block`` keeps its slot until it wakes (the fixture kills both)."""
    api.orchestra.worker(name="w2", concurrency=4)


@pytest.fixture
def held(api: ApiServer) -> Iterator[Callable[[float], str]]:
    """Factory: ``held(seconds)`` starts a run whose one step ``hold`` blocks; runs still going are cancelled after."""
    started: list[str] = []

    def start(seconds: float) -> str:
        name = add_workflow(api, {"hold": {"task": "t.block", "args": {"name": "${run.id}", "seconds": seconds}}})
        started.append(submit(api, name))
        return started[-1]

    yield start
    with api.client() as client:
        for run_id in started:
            if not client.get(run_id).status.finished:
                client.cancel(run_id)


def mark_page(page: Page) -> None:
    page.evaluate("window.__notReloaded = true")


def not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))


def node(page: Page, step: str) -> Locator:
    return page.locator(f"svg[data-testid=dag] g[data-step='{step}']")


def test_the_runs_list_shows_a_run_submitted_after_the_page_loaded(api: ApiServer, session: Sessions) -> None:
    page = session("admin").goto("/ui/runs")
    expect(page.locator("table[data-testid=runs]")).to_be_visible()
    mark_page(page)
    workflow = add_workflow(api, {"only": {"task": "t.effect", "args": {"name": "${run.id}"}}}, prefix="listed")
    run_id = submit(api, workflow)

    row = page.locator(f"table[data-testid=runs] tr[data-run-id='{run_id}']")
    expect(row).to_be_visible()
    expect(row.locator("[data-field=workflow]")).to_contain_text(workflow)
    expect(row.locator("[data-field=trigger]")).to_contain_text("api")
    expect(row.locator("[data-field=started_by]")).to_contain_text("ops")
    expect(row.locator("[data-field=status]")).to_contain_text("succeeded")
    for name in ("duration", "created"):
        expect(row.locator(f"[data-field={name}]")).to_have_count(1)
    assert row.locator("td").first.locator(f"a[href='/ui/runs/{run_id}']").count() == 1
    assert not_reloaded(page)


def test_the_filters_narrow_the_runs_list(api: ApiServer, session: Sessions) -> None:
    good = add_workflow(api, {"only": {"task": "t.effect", "args": {"name": "${run.id}"}}}, prefix="filtered")
    bad = add_workflow(
        api,
        {"boom": {"task": "t.flaky", "args": {"name": "${run.id}", "failures": 9}, "retry": {"max_attempts": 1}}},
        prefix="filtered",
    )
    ok_run, failed_run = submit(api, good), submit(api, bad)
    with api.client() as client:
        client.wait(ok_run), client.wait(failed_run)
    page = session("admin").goto("/ui/runs")
    filters = page.locator("form[data-testid=filters]")
    for name in ("select[name=status]", "select[name=trigger]", "input[name=workflow]", "input[name=since]"):
        expect(filters.locator(name)).to_have_count(1)
    filters.locator("input[name=workflow]").fill(bad)
    filters.locator("select[name=status]").select_option("failed")
    filters.locator("input[name=workflow]").press("Enter")
    expect(page.locator(f"tr[data-run-id='{failed_run}']")).to_be_visible()
    expect(page.locator(f"tr[data-run-id='{ok_run}']")).to_have_count(0)


def test_a_step_is_running_while_it_is_held_and_succeeded_after(
    api: ApiServer, session: Sessions, held: Callable[[float], str]
) -> None:
    run_id = held(4)
    page = session("admin").goto(f"/ui/runs/{run_id}")
    mark_page(page)
    expect(node(page, "hold")).to_have_attribute("data-status", "running")
    expect(page.locator("[data-testid=run-status]")).to_contain_text("running")
    expect(node(page, "hold")).to_have_attribute("data-status", "succeeded", timeout=20_000)
    expect(page.locator("[data-testid=run-status]")).to_contain_text("succeeded")
    assert node(page, "hold").get_attribute("role") == "button"
    assert node(page, "hold").get_attribute("tabindex") is not None
    with api.client() as client:
        history = client.events(run_id)
    # The history the page shows without reload ends where the run's does (the run's end included).
    expect(page.locator("ol[data-testid=events] li")).to_have_count(len(history))
    assert not_reloaded(page)


def test_a_for_each_step_counts_its_items(api: ApiServer, session: Sessions) -> None:
    workflow = add_workflow(
        api,
        {
            "list": {"task": "t.items", "args": {"count": 3}},
            "each": {
                "task": "t.square",
                "needs": ["list"],
                "for_each": "${steps.list.output}",
                "args": {"x": "${item}"},
            },
        },
    )
    run_id = submit(api, workflow)
    with api.client() as client:
        assert client.wait(run_id).status is RunStatus.SUCCEEDED
    page = session("admin").goto(f"/ui/runs/{run_id}")
    expect(node(page, "each").locator("[data-field=items]")).to_have_text("3/3 items")


def test_a_failed_step_shows_its_error_after_a_click(api: ApiServer, session: Sessions) -> None:
    workflow = add_workflow(
        api,
        {
            "boom": {
                "task": "t.flaky",
                "args": {"name": "${run.id}", "failures": 9, "error": "ValueError"},
                "retry": {"max_attempts": 1},
            }
        },
    )
    run_id = submit(api, workflow)
    with api.client() as client:
        assert client.wait(run_id).status is RunStatus.FAILED
    page = session("admin").goto(f"/ui/runs/{run_id}")
    expect(node(page, "boom")).to_have_attribute("data-status", "failed")
    node(page, "boom").click()
    detail = page.locator("section[data-testid=step-detail]")
    expect(detail).to_be_visible()
    expect(detail.locator("[data-field=error-type]")).to_contain_text("ValueError")
    expect(detail.locator("[data-field=error-message]")).to_contain_text(f"{run_id} failed attempt 1")
    expect(detail.locator("[data-field=attempts]")).to_contain_text("1")
    expect(detail.locator("[data-field=worker]")).not_to_be_empty()
    expect(detail.locator("[data-field=task-id]")).not_to_be_empty()


def test_the_timeline_has_a_bar_for_every_attempt(api: ApiServer, session: Sessions) -> None:
    retry = {"max_attempts": 4, "delay": "100ms", "backoff": "fixed", "jitter": False, "on": ["ConnectionError"]}
    workflow = add_workflow(
        api,
        {
            "first": {"task": "t.effect", "args": {"name": "${run.id}-first", "sleep": 0.3}},
            "flap": {
                "task": "t.flaky",
                "needs": ["first"],
                "args": {"name": "${run.id}", "failures": 2},
                "retry": retry,
            },
            "side": {"task": "t.effect", "args": {"name": "${run.id}-side"}},
        },
    )
    run_id = submit(api, workflow)
    with api.client() as client:
        assert client.wait(run_id).status is RunStatus.SUCCEEDED
    page = session("admin").goto(f"/ui/runs/{run_id}")
    timeline = page.locator("div[data-testid=timeline]")
    bars = timeline.locator("[data-step=flap][data-attempt]")
    expect(bars).to_have_count(3)
    assert sorted(bars.evaluate_all("els => els.map(e => e.dataset.attempt)")) == ["1", "2", "3"]
    expect(timeline.locator("[data-step=first][data-attempt='1']")).to_have_count(1)
    expect(timeline.locator("[data-step=side][data-attempt='1']")).to_have_count(1)
    # first -> flap is the longest chain; side runs beside it.
    expect(timeline.locator("[data-step=flap][data-critical=true]").first).to_be_attached()
    expect(timeline.locator("[data-step=side][data-critical=true]")).to_have_count(0)
    node(page, "flap").click()
    expect(page.locator("section[data-testid=step-detail] [data-field=attempts]")).to_contain_text("3")


@pytest.mark.parametrize("scope", ["read", "submit"])
def test_cancel_without_the_admin_scope_shows_the_403(
    api: ApiServer, session: Sessions, held: Callable[[float], str], scope: str
) -> None:
    run_id = held(15)
    page = session(scope).goto(f"/ui/runs/{run_id}")
    expect(page.locator("[data-testid=run-status]")).to_contain_text("running")
    page.locator("button[data-testid=cancel]").click()
    confirm = page.locator("dialog[data-testid=confirm]")
    if confirm.is_visible():
        confirm.locator("button[data-testid=confirm-yes]").click()
    flash = page.locator("[data-testid=flash]")
    expect(flash).to_be_visible()
    expect(flash).to_contain_text(f"has scope {scope}; this needs admin")
    with api.client() as client:
        assert client.get(run_id).status is RunStatus.RUNNING
    expect(page.locator("[data-testid=run-status]")).to_contain_text("running")


def test_cancel_with_the_admin_scope_asks_then_cancels(
    api: ApiServer, session: Sessions, held: Callable[[float], str]
) -> None:
    run_id = held(15)
    page = session("admin").goto(f"/ui/runs/{run_id}")
    expect(page.locator("[data-testid=run-status]")).to_contain_text("running")
    page.locator("button[data-testid=cancel]").click()
    confirm = page.locator("dialog[data-testid=confirm]")
    expect(confirm).to_be_visible()
    confirm.locator("button[data-testid=confirm-no]").click()
    expect(confirm).to_be_hidden()
    with api.client() as client:
        assert client.get(run_id).status is RunStatus.RUNNING
    page.locator("button[data-testid=cancel]").click()
    expect(confirm).to_be_visible()
    confirm.locator("button[data-testid=confirm-yes]").click()
    expect(page.locator("[data-testid=run-status]")).to_contain_text("cancelled")
    expect(node(page, "hold")).to_have_attribute("data-status", "cancelled")
    with api.client() as client:
        assert client.get(run_id).status is RunStatus.CANCELLED


def test_retry_with_the_admin_scope_starts_the_failed_steps_again(api: ApiServer, session: Sessions) -> None:
    workflow = add_workflow(
        api,
        {"boom": {"task": "t.flaky", "args": {"name": "${run.id}", "failures": 1}, "retry": {"max_attempts": 1}}},
    )
    run_id = submit(api, workflow)
    with api.client() as client:
        assert client.wait(run_id).status is RunStatus.FAILED
    page = session("admin").goto(f"/ui/runs/{run_id}")
    page.locator("button[data-testid=retry]").click()
    page.locator("dialog[data-testid=confirm] button[data-testid=confirm-yes]").click()
    expect(node(page, "boom")).to_have_attribute("data-status", "succeeded", timeout=20_000)
    with api.client() as client:
        assert client.wait(run_id).status is RunStatus.SUCCEEDED


def test_markup_in_an_output_or_an_error_is_shown_as_text(api: ApiServer, session: Sessions) -> None:
    workflow = add_workflow(
        api,
        {
            "said": {"task": "t.hostile"},
            "threw": {"task": "t.hostile", "args": {"fail": True}, "retry": {"max_attempts": 1}},
        },
    )
    run_id = submit(api, workflow)
    with api.client() as client:
        assert client.wait(run_id).status is RunStatus.FAILED
    opened = session("admin")
    page = opened.goto(f"/ui/runs/{run_id}")
    detail = page.locator("section[data-testid=step-detail]")
    node(page, "said").click()
    expect(detail.locator("pre[data-field=output]")).to_contain_text(HOSTILE)
    node(page, "threw").click()
    expect(detail.locator("[data-field=error-message]")).to_contain_text(HOSTILE)
    expect(page.locator("ol[data-testid=events] li").first).to_be_visible()
    page.wait_for_timeout(500)  # an injected onerror would fire once the image fails to load
    assert opened.dialogs == []
    assert page.evaluate("document.querySelector('img[src=x]')") is None
    assert page.evaluate("[...document.scripts].filter(s => s.text.includes('alert(')).length") == 0
    listed = opened.goto("/ui/runs")
    expect(listed.locator(f"tr[data-run-id='{run_id}']")).to_be_visible()
    assert opened.dialogs == []


def test_a_wrong_token_is_refused(session: Sessions) -> None:
    opened = session(None)
    page = opened.login("not-a-token")
    assert urlparse(page.url).path == "/ui/login"
    expect(page.locator("input[name=token]")).to_be_visible()
    page = opened.goto("/ui/runs")
    assert urlparse(page.url).path == "/ui/login"


@pytest.mark.parametrize("path", ["/ui/runs", "/ui/runs/some-run", "/ui/workflows/some-workflow"])
def test_pages_redirect_to_the_login_without_a_session(session: Sessions, path: str) -> None:
    page = session(None).goto(path)
    assert urlparse(page.url).path == "/ui/login"
    expect(page.locator("input[name=token][type=password]")).to_be_visible()


def test_the_session_cookie_is_http_only(api: ApiServer, session: Sessions) -> None:
    opened = session("read")
    assert urlparse(opened.page.url).path != "/ui/login"
    cookies = opened.context.cookies()
    assert any(cookie["httpOnly"] for cookie in cookies), cookies
    # Nothing a script can read holds the token: not a cookie, not web storage.
    readable = opened.page.evaluate("document.cookie + JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
    assert api.tokens["read"] not in readable
    expect(opened.goto("/ui/runs").locator("table[data-testid=runs]")).to_be_visible()


def test_the_workflow_page_lists_its_recent_runs(api: ApiServer, session: Sessions) -> None:
    workflow = add_workflow(
        api,
        {"only": {"task": "t.effect", "args": {"name": "${run.id}"}}},
        params={"label": {"type": "string", "default": "x"}},
        schedule=[{"name": "nightly", "cron": "0 3 * * *"}],
    )
    run_id = submit(api, workflow)
    with api.client() as client:
        client.wait(run_id)
    page = session("read").goto(f"/ui/workflows/{workflow}")
    expect(page.locator("svg[data-testid=dag] g[data-step=only]")).to_be_attached()
    expect(page.locator("table[data-testid=recent-runs]")).to_contain_text(run_id)
    expect(page.locator("body")).to_contain_text("label")
    expect(page.locator("body")).to_contain_text("nightly")


def test_on_a_phone_and_by_keyboard_alone(api: ApiServer, session: Sessions) -> None:
    """A phone-sized window scrolls nothing sideways but the graph itself, and a step opens with the keyboard."""
    workflow = add_workflow(
        api,
        {
            "first": {"task": "t.effect", "args": {"name": "${run.id}-first"}},
            **{
                f"wide{i}": {"task": "t.effect", "needs": ["first"], "args": {"name": f"${{run.id}}-{i}"}}
                for i in range(8)
            },
        },
    )
    run_id = submit(api, workflow)
    with api.client() as client:
        assert client.wait(run_id).status is RunStatus.SUCCEEDED
    page = session("admin").page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{api.url}/ui/runs/{run_id}")
    expect(node(page, "first")).to_have_attribute("data-status", "succeeded")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # the page itself fits
    node(page, "wide3").focus()
    page.keyboard.press("Enter")
    detail = page.locator("section[data-testid=step-detail]")
    expect(detail).to_be_visible()
    expect(detail).to_contain_text("wide3")
