"""The dashboard in headless Chromium (Debian's package, driven by Playwright's Python package;
no browser download) against a real ``ravel serve``, a real worker, PostgreSQL and Redis:
sign in, find a parked agent run, approve its order by clicking and see it finish; retry a
failed run with a state patch by clicking.

``DASHBOARD_SCREENSHOTS=docs/screenshots`` keeps the screenshots the README shows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline import get_run, run_history, start_run
from pipeline.testing import ScriptedLLMServer
from pipeline.testing.cluster import Cluster, free_port, wait_for
from pipeline.web import keys as api_keys
from tests.e2e import dashboard_flows
from tests.support.serve import start_serve

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium, or a skip (a failure in CI) where it or Playwright is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed (make install)")
        pytest.skip("playwright is not installed (make install)")
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (make install installs Debian's chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield found
        found.close()


def _status(run_id: str, wanted: str) -> bool:
    return get_run(run_id).status == wanted


def test_operators_approve_and_retry_runs_by_clicking(
    pg_cluster: Cluster, tmp_path: Path, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    shots = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    llm = ScriptedLLMServer(dashboard_flows.SCRIPT).start()
    try:
        keys_file = tmp_path / "api-keys.toml"
        secret, _ = api_keys.create(
            keys_file, "dana", principal="dana", roles=["operator"], groups=["finance"]
        )
        pg_cluster.worker(
            extra_env={
                "RAVEL_WORKFLOWS": "tests.e2e.dashboard_flows",
                "OPENAI_BASE_URL": llm.base_url,
                "RAVEL_MODEL": "gpt-4o-mini",
            },
            beat=True,
        )
        port = free_port()
        start_serve(pg_cluster, keys_file, port)
        base = f"http://127.0.0.1:{port}"

        order = dashboard_flows.buyer.start("Buy 5 laptops for the new hires")
        fragile = start_run("e2e_dash_fragile", {"order": "5 laptops"})
        wait_for(lambda: _status(order, "waiting"), 60, "the agent to park on its approval")
        wait_for(lambda: _status(fragile, "failed"), 60, "the fragile run to fail")

        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(base + "/")
        assert "/ui/login" in page.url  # not signed in: the sign-in page, then back
        page.fill("#key", secret)
        page.click("button[type=submit]")
        page.wait_for_selector(f"tr[data-run-id='{order}']")
        assert page.locator(f"tr[data-run-id='{fragile}'] .status").inner_text() == "failed"
        page.screenshot(path=str(shots / "runs.png"))

        page.click("text=Approvals")
        card = page.locator(f"article[data-run-id='{order}']")
        assert "submit_order" in card.inner_text() and "group:finance" in card.inner_text()
        page.screenshot(path=str(shots / "approvals.png"))

        card.locator("a.mono").click()
        page.wait_for_selector("#timeline")
        timeline = page.locator("#timeline").inner_text()
        assert "lookup_vendor" in timeline and "Checking the vendor first." in timeline
        assert "tokens" in timeline and "gpt-4o-mini" in timeline
        assert "Audit chain verified" in page.locator("#history").inner_text()
        page.set_viewport_size({"width": 1280, "height": 1500})
        page.screenshot(path=str(shots / "run.png"))
        page.set_viewport_size({"width": 1280, "height": 860})

        shown_wait = get_run(order).wait
        assert shown_wait is not None
        page.click("#approve")
        confirm = page.locator("section.confirm").inner_text()
        assert "Proposed action" in confirm and "globex" in confirm
        assert page.locator("input[name=wait_id]").input_value() == shown_wait.id
        page.click("#confirm")
        page.wait_for_selector("text=Approved as group:finance.")
        # The page follows the run by itself (live refresh) until it has finished.
        page.wait_for_selector(".summary .s-succeeded", timeout=60_000)
        assert "PO-1001" in page.locator("#timeline").inner_text()
        approved = [e for e in run_history(order) if e.kind == "wait.approved"]
        assert [(e.actor, e.data.get("as")) for e in approved] == [("dana", "group:finance")]

        page.goto(f"{base}/ui/runs/{fragile}")
        assert "no PO number" in page.locator("#timeline").inner_text()
        page.fill("#retry-patch", '{"po_number": "PO-7"}')
        page.click("#retry")
        assert "PO-7" in page.locator("section.confirm").inner_text()
        page.click("#confirm")
        page.wait_for_selector(".summary .s-succeeded", timeout=60_000)
        assert get_run(fragile).result == {"po": "PO-7", "vendor": "globex"}
        retried = [e for e in run_history(fragile) if e.kind == "run.retried"]
        assert [e.actor for e in retried] == ["dana"]
    finally:
        llm.stop()
