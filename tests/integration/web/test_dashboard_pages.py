"""What the dashboard's pages show: runs filtered, searched and paged; a run's timeline
(attempts, errors and tracebacks, LLM and tool calls with tokens and cost, state diffs), its
live fragments; workers and the reaper."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from pipeline import Agent, Done, Next, RetryPolicy, Workflow, get_run, start_run, tool
from pipeline.store import get_db, health
from pipeline.testing.inline import InlineDispatcher
from pipeline.web.dashboard import pages
from tests.integration._engine_support import unique
from tests.integration.web.dashboard_support import Browser, build_app
from tests.integration.web.support import approval_flow, done_flow
from tests.support.agents import scripted_llm, settle

App = tuple[Flask, dict[str, str], Path]


@pytest.fixture
def dash(sqlite_db: str, tmp_path: Path, inline: InlineDispatcher) -> Iterator[App]:
    yield build_app(tmp_path)


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr data-run-id="([^"]+)"', page)


def test_runs_are_filtered_searched_and_paged(
    any_db: str, tmp_path: Path, inline: InlineDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, secrets, _ = build_app(tmp_path)
    done, waiting = done_flow(), approval_flow(["group:finance"])
    a = start_run(done, {"customer": "ACME Corp", "note": "100% sure_thing"})
    b = start_run(done, {"customer": "Globex"})
    c = start_run(waiting, {"customer": "Initech"})
    inline.drain()
    ops = Browser(app, secrets["ops"]).signed_in()
    assert _rows(ops.html("/ui/runs")) == [c, b, a]
    assert _rows(ops.html("/ui/runs?status=waiting")) == [c]
    assert _rows(ops.html(f"/ui/runs?workflow={done}")) == [b, a]
    assert _rows(ops.html(f"/ui/runs?workflow={done}&status=waiting")) == []
    assert _rows(ops.html("/ui/runs?q=acme")) == [a]  # input text, any case
    assert _rows(ops.html("/ui/runs?q=100%25")) == [a]  # LIKE wildcards taken literally
    assert _rows(ops.html("/ui/runs?q=1%250")) == []  # "1%0" would match "100" as a pattern
    assert _rows(ops.html("/ui/runs?q=1_0")) == []
    assert _rows(ops.html("/ui/runs?q=sure_th")) == [a]
    assert _rows(ops.html(f"/ui/runs?q={b[:8]}")) == [b]  # an id's first characters
    assert _rows(ops.html(f"/ui/runs?q={b[:11].upper()}")) == [b]  # across a hyphen
    assert _rows(ops.html(f"/ui/runs?q={c.upper()}")) == [c]
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    earlier = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert _rows(ops.html(f"/ui/runs?since={later}")) == []
    assert _rows(ops.html(f"/ui/runs?since={earlier}&until={later}")) == [c, b, a]
    assert "must be a date and time" in ops.html("/ui/runs?since=yesterday", 400)
    assert "unknown status" in ops.html("/ui/runs?status=lost", 400)

    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    first = ops.html("/ui/runs")
    assert _rows(first) == [c, b]
    older = re.search(r'rel="next" href="([^"]+)"', first)
    assert older is not None
    rest = ops.html(older.group(1).replace("&amp;", "&"))
    assert _rows(rest) == [a] and 'rel="next"' not in rest
    filtered = ops.html(f"/ui/runs?workflow={done}")
    assert _rows(filtered) == [b, a] and 'rel="next"' not in filtered
    assert "not one this API returned" in ops.html("/ui/runs?cursor=garbage", 400)


def test_the_run_page_shows_attempts_errors_effects_and_state_diffs(
    dash: App, inline: InlineDispatcher
) -> None:
    app, secrets, _ = dash
    flow = Workflow(unique("dash_timeline"))
    tries: list[int] = []

    @flow.step(start=True)
    def quote(ctx):  # type: ignore[no-untyped-def]
        ctx.state["price"] = ctx.effect("fetch_price", lambda: {"usd": 12.5})["usd"]
        return Next("order")

    @flow.step(retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
    def order(ctx):  # type: ignore[no-untyped-def]
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("vendor timed out")
        ctx.state["po"] = "PO-9"
        del ctx.state["price"]
        return Done({"po": "PO-9"})

    run_id = start_run(flow.name, {"sku": "A-1"})
    settle(inline, run_id)
    assert get_run(run_id).status == "succeeded"
    ops = Browser(app, secrets["ops"]).signed_in()
    page = ops.html(f"/ui/runs/{run_id}")
    quote_block = page[page.index('id="seq-0"') : page.index('id="seq-1"')]
    assert "fetch_price" in quote_block and "12.5" in quote_block
    assert re.search(r'class="added"><td class="mono">price</td>', quote_block)
    order_block = page[page.index('id="seq-1"') : page.index('id="history"')]
    assert "attempt 1 · <strong>failed</strong> → retry" in order_block
    assert "RuntimeError: vendor timed out" in order_block
    assert "Traceback" in order_block and "in order" in order_block  # where it raised
    assert "attempt 2 · <strong>succeeded</strong> → done" in order_block
    assert re.search(r'class="removed"><td class="mono">price</td>', order_block)
    assert re.search(r'class="added"><td class="mono">po</td>', order_block)
    assert "Audit chain verified" in page

    live = ops.get(f"/ui/runs/{run_id}/live?part=head")
    assert (live.headers["X-Ravel-Live"], live.headers["X-Ravel-Status"]) == ("0", "succeeded")
    assert ops.get(f"/ui/runs/{run_id}/live?part=nope").status_code == 400
    parked = start_run(approval_flow(["group:finance"]), {})
    inline.drain()
    live = ops.get(f"/ui/runs/{parked}/live?part=body")
    assert (live.headers["X-Ravel-Live"], live.headers["X-Ravel-Status"]) == ("1", "waiting")
    assert "Who may decide" in ops.html(f"/ui/runs/{parked}/live?part=head")
    rows = ops.get("/ui/runs/rows")
    assert rows.headers["X-Ravel-Live"] == "1" and parked in rows.get_data(as_text=True)
    assert "run_not_found" in ops.html("/ui/runs/not-a-run", 404)


@tool
def weather(city: str) -> dict[str, Any]:
    """The weather of a city.

    Args:
        city: its name.
    """
    return {"city": city, "sky": "clear"}


def test_the_run_page_shows_the_models_words_tokens_cost_and_tool_calls(
    dash: App, inline: InlineDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, secrets, _ = dash
    agent = Agent(unique("dash_agent"), "Answer about the weather.", tools=[weather])
    with scripted_llm(monkeypatch) as llm:
        llm.set_script(
            {
                "turns": [
                    {
                        "content": "Let me look.",
                        "tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"}}],
                    },
                    {"content": "It is clear in Oslo."},
                ]
            }
        )
        run_id = agent.start("Weather in Oslo?")
        settle(inline, run_id)
    assert get_run(run_id).status == "succeeded"
    ops = Browser(app, secrets["ops"]).signed_in()
    page = ops.html(f"/ui/runs/{run_id}")
    timeline = page[page.index('id="timeline"') : page.index('id="history"')]
    assert timeline.count("<strong>LLM</strong> gpt-4o-mini") == 2
    assert "Let me look." in timeline and "It is clear in Oslo." in timeline
    assert re.search(r"\d+ tokens · \$0\.0000\d+", timeline)
    assert "finish: tool_calls" in timeline and "finish: stop" in timeline
    assert "asks for <strong>weather</strong>" in timeline
    tool_part = timeline[timeline.index("<strong>Tool</strong> weather") :]
    assert "&#34;Oslo&#34;" in tool_part and "&#34;clear&#34;" in tool_part


def test_the_workers_page_shows_what_each_worker_serves_and_the_reapers_last_pass(
    dash: App, inline: InlineDispatcher
) -> None:
    app, secrets, _ = dash
    flow = done_flow()
    start_run(flow, {})
    viewer = Browser(app, secrets["viewer"]).signed_in()
    page = viewer.html("/ui/workers")
    assert "No reaper pass was ever recorded" in page and "No reaper pass in the last" in page
    db = get_db()
    health.touch_worker(db, "celery@box-1", {flow: [1]}, starting=True)
    health.record_reaper_pass(
        db, "box-1/4242", {"woken": 2, "expired": 0, "republished": 1}, "expire x: boom <b>"
    )
    page = viewer.html("/ui/workers")
    assert "celery@box-1" in page and f'{flow} <span class="dim">v1</span>' in page
    assert "box-1/4242" in page and "woken 2" in page and "republished 1" in page
    assert "boom &lt;b&gt;" in page and "No reaper pass in the last" not in page
    assert ">seen<" in page
