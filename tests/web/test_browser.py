"""The web console in a real browser (Debian's Chromium, driven by Playwright) against real
`serve` and simulator processes, on both databases.

Screenshots of each page go to the test's output folder; with UPDATE_CONSOLE_SCREENSHOTS=1
the current ones are also copied to docs/ for the README.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.support import databases, processes

ALPHA, BETA, OPS = "e2e-alpha-key", "e2e-beta-key", "e2e-ops-admin-key"
DOCS = Path(__file__).resolve().parents[2] / "docs"
DOC_SHOTS = {"console-jobs", "console-job", "console-spend"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def database(kind: str, tmp: Path) -> str:
    """A fresh database of this kind for the module (PostgreSQL beside the suite's own)."""
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / 'console.db'}"
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set")
    url = f"{base}_console_e2e"
    databases.reset_postgres(url)
    return url


@dataclass(frozen=True)
class Stack:
    url: str
    simulator_url: str
    shots: Path
    service: processes.Process


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A simulator and a service with an admin caller (ops) besides alpha and beta."""
    tmp = tmp_path_factory.mktemp(f"console-{request.param}")
    database_url = database(request.param, tmp)
    callers = tmp / "callers.toml"
    callers.write_text(f'[callers.ops]\napi_key = "{OPS}"\nadmin = true\n')
    sim_port, api_port = processes.free_port(), processes.free_port()
    env = processes.service_env(
        database_url, f"http://127.0.0.1:{sim_port}", api_port,
        CALLERS_FILE=str(callers), ARCHIVE_URL=f"file://{tmp / 'archive'}",
    )  # fmt: skip
    processes.migrate(env)
    sim = processes.simulator(tmp, sim_port).start(timeout=90)
    service = processes.service(tmp, env, api_port)
    try:
        service.start(timeout=90)
        yield Stack(
            f"http://127.0.0.1:{api_port}",
            f"http://127.0.0.1:{sim_port}",
            tmp / "screenshots",
            service,
        )
    finally:
        service.terminate()
        sim.terminate()


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Browser]:
    """One Chromium for the module (per database: Playwright's loop must be gone before the
    next stack prepares its database with asyncio)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) for each test."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    ctx.set_default_timeout(30_000)
    try:
        yield ctx
    finally:
        ctx.close()


def submit(stack: Stack, key: str, prompt: str, **fields: Any) -> str:
    answer = httpx.post(
        f"{stack.url}/v1/jobs",
        json={"prompt": prompt, **fields},
        headers={"Authorization": f"Bearer {key}"},
        timeout=20,
    )
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["id"]
    return job_id


def settled(stack: Stack, key: str, job_id: str, within: float = 60) -> dict[str, Any]:
    """Follow a job over the API until it is final and its archiving has ended."""
    deadline = time.monotonic() + within
    while True:
        job: dict[str, Any] = httpx.get(
            f"{stack.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}, timeout=20
        ).json()
        if job["status"] in ("failed", "cancelled") or job.get("archive_status") not in (
            None,
            "pending",
        ):
            return job
        assert time.monotonic() < deadline, f"job not settled: {job}"
        time.sleep(0.2)


def sign_in(stack: Stack, context: BrowserContext, key: str) -> Page:
    page = context.new_page()
    page.goto(f"{stack.url}/console")
    assert "/console/sign-in" in page.url
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{stack.url}/console")
    return page


def shoot(stack: Stack, page: Page, name: str) -> None:
    """A full-page screenshot in the output folder (and in docs/ when asked)."""
    stack.shots.mkdir(parents=True, exist_ok=True)
    path = stack.shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if name in DOC_SHOTS and os.environ.get("UPDATE_CONSOLE_SCREENSHOTS") == "1":
        shutil.copy(path, DOCS / f"{name}.png")


def test_sign_in_sets_a_safe_cookie_and_never_shows_the_key(
    stack: Stack, context: BrowserContext
) -> None:
    page = context.new_page()
    page.goto(f"{stack.url}/console/sign-in")
    assert page.title() == "Sign in · evolink-jobs console"
    assert page.evaluate("document.activeElement.id") == "api_key"  # ready to type
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.textContent") == "evolink-jobs console"
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    shoot(stack, page, "console-sign-in")
    page.get_by_label("API key").fill("wrong-key-0123456789")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "That API key is not known."
    assert page.get_by_label("API key").input_value() == ""  # the refused key is not echoed
    page.get_by_label("API key").fill(ALPHA)
    page.keyboard.press("Enter")  # the keyboard alone signs in
    page.wait_for_url(f"{stack.url}/console")
    assert page.get_by_role("heading", name="Jobs").is_visible()
    session = next(c for c in context.cookies() if c["name"] == "evolink_console")
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    assert session["secure"] is False  # PUBLIC_BASE_URL is http here (https: see test_sessions)
    assert session["path"] == "/console" and session["expires"] > time.time() + 3600
    assert ALPHA not in page.content() and ALPHA not in page.url
    assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read it
    # Neither the keys (the right one, the wrong one) nor the session reach the logs (DEBUG).
    log = stack.service.output()
    assert '"event": "console_signed_in"' in log
    assert ALPHA not in log and "wrong-key-0123456789" not in log and session["value"] not in log


def test_a_completed_jobs_thumbnail_loads_and_its_page_shows_the_timeline(
    stack: Stack, context: BrowserContext
) -> None:
    job_id = submit(stack, ALPHA, "a lighthouse at dusk, watercolour", n=2, size="3:2")
    assert settled(stack, ALPHA, job_id)["archive_status"] == "archived"
    page = sign_in(stack, context, ALPHA)
    row = page.locator(f"#job-{job_id}")
    thumbs = row.locator("img.thumb")
    thumbs.first.wait_for()
    assert thumbs.count() == 2
    page.wait_for_function(
        "(id) => [...document.querySelectorAll(`#job-${id} img.thumb`)]"
        ".every(img => img.complete && img.naturalWidth > 0)",
        arg=job_id,
    )
    assert row.locator(".badge").inner_text() == "completed"
    shoot(stack, page, "console-jobs-alpha")

    row.get_by_role("link", name="a lighthouse at dusk, watercolour").click()
    page.wait_for_url(f"{stack.url}/console/jobs/{job_id}")
    assert page.title().startswith(f"Job {job_id[:8]}")
    full = page.locator("figure img.full")
    assert full.count() == 2
    page.wait_for_function(
        "() => [...document.querySelectorAll('figure img.full')].every(i => i.naturalWidth > 0)"
    )
    assert "Download" in page.locator("figure").first.inner_text()
    timeline = page.locator("ol.timeline").inner_text()
    assert "created" in timeline and "submit" in timeline and "applied" in timeline
    assert "callback" in timeline or "poll" in timeline
    shoot(stack, page, "console-job")


def test_new_jobs_appear_and_finish_live(stack: Stack, context: BrowserContext) -> None:
    page = sign_in(stack, context, BETA)
    created = httpx.post(
        f"{stack.url}/v1/jobs",
        json={"prompt": "a red kite that takes its time [sim duration=600]"},
        headers={"Authorization": f"Bearer {BETA}"},
        timeout=20,
    ).json()
    job_id, task_id = created["id"], created["evolink_task_id"]
    assert task_id, created
    row = page.locator(f"#job-{job_id}")
    row.wait_for()  # arrived without a reload
    assert row.locator(".badge").inner_text() in ("pending", "processing")
    assert row.locator("progress").count() == 1
    detail = context.new_page()
    detail.goto(f"{stack.url}/console/jobs/{job_id}")
    assert detail.locator(".summary .badge").inner_text() in ("pending", "processing")

    # EvoLink (the simulator) finishes the task now: both pages follow without a reload.
    finished = httpx.post(f"{stack.simulator_url}/_sim/tasks/{task_id}/complete", timeout=20)
    assert finished.status_code == 200, finished.text
    row.locator(".badge-completed").wait_for()
    row.locator("img.thumb").first.wait_for()
    detail.locator(".summary .badge-completed").wait_for()
    detail.locator("figure img.full").first.wait_for()
    assert "applied" in detail.locator("ol.timeline").inner_text()


def test_a_failed_jobs_error_is_shown(stack: Stack, context: BrowserContext) -> None:
    job_id = submit(stack, ALPHA, "a fox [sim outcome=failed code=content_policy_violation]")
    assert settled(stack, ALPHA, job_id)["status"] == "failed"
    page = sign_in(stack, context, ALPHA)
    page.goto(f"{stack.url}/console/jobs/{job_id}")
    error = page.get_by_role("region", name="Error")
    assert "content_policy_violation" in error.inner_text()
    assert page.locator(".summary .badge").inner_text() == "failed"


def test_another_callers_job_is_not_reachable_but_an_admin_sees_all(
    stack: Stack, context: BrowserContext, browser: Browser
) -> None:
    theirs = submit(stack, BETA, "beta's private prompt")
    mine = submit(stack, ALPHA, "alpha's own prompt")
    settled(stack, BETA, theirs)
    settled(stack, ALPHA, mine)
    page = sign_in(stack, context, ALPHA)
    answer = page.goto(f"{stack.url}/console/jobs/{theirs}")
    assert answer is not None and answer.status == 404
    assert "beta's private prompt" not in page.content()
    page.goto(f"{stack.url}/console")
    assert page.locator(f"#job-{theirs}").count() == 0

    admin = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        ops = sign_in(stack, admin, OPS)
        ops.wait_for_function(
            "() => [...document.querySelectorAll('img.thumb')].every(i => i.naturalWidth > 0)"
        )
        shoot(stack, ops, "console-jobs")
        assert (
            ops.locator(f"#job-{theirs}").count() == 1 and ops.locator(f"#job-{mine}").count() == 1
        )
        ops.get_by_label("Caller").select_option("beta")
        ops.get_by_role("button", name="Filter").click()
        ops.wait_for_url("**caller=beta**")
        assert (
            ops.locator(f"#job-{theirs}").count() == 1 and ops.locator(f"#job-{mine}").count() == 0
        )
        assert (ops.goto(f"{stack.url}/console/jobs/{theirs}") or pytest.fail()).status == 200
        ops.goto(f"{stack.url}/console/spend")
        assert ops.title() == "Spend · evolink-jobs console"
        assert ops.locator("svg[role=img] rect.bar").count() >= 2  # alpha and beta today
        shoot(stack, ops, "console-spend")
        phone = admin.new_page()
        phone.set_viewport_size({"width": 390, "height": 844})
        phone.goto(f"{stack.url}/console")
        shoot(stack, phone, "console-phone")
    finally:
        admin.close()


def test_form_posts_without_a_csrf_token_are_refused(stack: Stack, context: BrowserContext) -> None:
    page = sign_in(stack, context, ALPHA)
    forms: list[tuple[str, dict[str, str | float | bool]]] = [
        ("/console/sign-out", {}),
        ("/console/sign-in", {"api_key": ALPHA}),
        ("/console/sign-out", {"csrf_token": "guessed"}),
    ]
    for path, form in forms:
        answer = page.request.post(f"{stack.url}{path}", form=form, max_redirects=0)
        assert answer.status == 403, (path, answer.status)
    page.reload()
    assert page.get_by_role("button", name="Sign out").is_visible()  # still signed in
    page.get_by_role("button", name="Sign out").click()  # the real form carries its token
    page.wait_for_url(f"{stack.url}/console/sign-in")
    assert not [c for c in context.cookies() if c["name"] == "evolink_console"]
