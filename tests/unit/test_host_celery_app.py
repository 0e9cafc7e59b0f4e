"""Ravel on a host project's Celery app (``tasks.install``), without services: what it checks
at once, what it registers when a worker or beat starts, and what it leaves alone."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from celery import Celery

import tasks
from pipeline import dispatch
from pipeline.errors import ConfigurationError
from pipeline.settings import reload_settings
from tasks.host import conflicts

BROKER = "redis://127.0.0.1:6379/13"
#: What a Celery app needs, on top of its defaults, to take Ravel's steps.
GOOD = {"broker_url": BROKER, "worker_prefetch_multiplier": 1}


@pytest.fixture(autouse=True)
def ravel_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> Iterator[None]:
    monkeypatch.setenv("RAVEL_HOME", str(tmp_path))
    monkeypatch.setenv("RAVEL_BROKER_URL", BROKER)
    monkeypatch.setenv("RAVEL_WORKFLOWS", "tests.e2e.http_flows")
    reload_settings()
    yield
    dispatch.set_dispatcher(None)
    reload_settings()


def _host(**conf: object) -> Celery:
    app = Celery("proj")
    app.conf.update({**GOOD, **conf})

    @app.task(name="proj.send_receipt", shared=False)
    def send_receipt(order_id: int) -> None:
        del order_id

    app.conf.beat_schedule = {"proj-nightly": {"task": "proj.send_receipt", "schedule": 86400}}
    return app


def _django_style(**settings: object) -> Celery:
    """An app configured like Django's: CELERY_-prefixed names read from a settings object."""
    app = Celery("proj")
    upper = {f"CELERY_{k.upper()}": v for k, v in {**GOOD, **settings}.items()}
    app.config_from_object(SimpleNamespace(**upper), namespace="CELERY")
    return app


def test_celerys_default_prefetch_is_refused_naming_what_to_set() -> None:
    app = Celery("proj")
    app.conf.broker_url = BROKER
    with pytest.raises(ConfigurationError) as refused:
        tasks.install(app)
    message = str(refused.value)
    assert "the Celery app 'proj' cannot run Ravel's steps" in message
    assert "worker_prefetch_multiplier is 4" in message
    assert "set app.conf.worker_prefetch_multiplier = 1" in message
    assert "\n" not in message


def test_pickle_in_a_django_projects_settings_is_refused_with_the_django_setting_name() -> None:
    app = _django_style(accept_content=["json", "pickle"], worker_prefetch_multiplier=8)
    with pytest.raises(ConfigurationError) as refused:
        tasks.install(app)
    message = str(refused.value)
    assert "(1) accept_content allows pickle" in message
    assert 'CELERY_ACCEPT_CONTENT = ["json"] in your settings' in message
    assert "(2) worker_prefetch_multiplier is 8" in message
    assert "CELERY_WORKER_PREFETCH_MULTIPLIER = 1 in your settings" in message


def test_a_broker_other_than_ravels_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAVEL_BROKER_URL", "redis://:secret@127.0.0.1:6379/14")
    reload_settings()
    found = conflicts(_host())
    assert len(found) == 1, found
    assert "this app's broker is redis://127.0.0.1:6379/13" in found[0]
    assert "RAVEL_BROKER_URL is redis://:***@127.0.0.1:6379/14" in found[0]  # masked
    # The same broker written differently (default port) is the same broker.
    monkeypatch.setenv("RAVEL_BROKER_URL", "redis://127.0.0.1/13")
    reload_settings()
    assert conflicts(_host()) == []


def test_a_redis_visibility_timeout_shorter_than_a_step_is_refused() -> None:
    short = _host(broker_transport_options={"visibility_timeout": 600})
    (problem,) = conflicts(short)
    assert "the Redis visibility_timeout is 600 s, less than the 1440 s" in problem
    assert 'app.conf.broker_transport_options = {"visibility_timeout": 1440}' in problem
    assert conflicts(_host(broker_transport_options={"visibility_timeout": 1440})) == []


def test_install_registers_ravel_when_a_worker_starts_beside_the_hosts_own_tasks() -> None:
    app = _host(task_default_queue="shop")
    assert tasks.install(app) is app
    assert tasks.install(app) is app  # a second call changes nothing
    # Nothing is imported yet: a web process that only starts runs never loads workflows.
    assert "e2e_http_refund.check" not in app.tasks
    assert app.conf.worker_consumer == "tasks.consumer:Consumer"

    app.loader.import_default_modules()  # what `celery worker` and `celery beat` do first

    step = app.tasks["e2e_http_refund.check"]
    # Ravel's per-task settings, although the app has Celery's defaults.
    assert app.conf.task_acks_late is False and app.conf.task_reject_on_worker_lost is None
    assert (step.acks_late, step.reject_on_worker_lost, step.acks_on_failure_or_timeout) == (
        True,
        True,
        True,
    )
    assert (step.serializer, step.ignore_result, step.queue) == ("json", True, "ravel.v1")
    assert (step.soft_time_limit, step.time_limit) == (300.0, 360.0)
    assert app.tasks["proj.send_receipt"].acks_late is False  # the host's own: untouched
    assert "ravel.reap" in app.tasks
    assert set(app.conf.beat_schedule) == {"proj-nightly", "ravel-reaper"}
    assert app.conf.beat_schedule["ravel-reaper"]["options"]["queue"] == "ravel.reaper"
    # Without -Q a worker consumes the host's queue and Ravel's (other tests of this process
    # may have loaded more workflow versions: more ravel.v<N> queues).
    consumed = set(app.amqp.queues.consume_from)
    assert {"shop", "ravel", "ravel.reaper", "ravel.v1"} <= consumed
    assert all(q == "shop" or q.startswith("ravel") for q in consumed), consumed
    # The host's tasks still route to its queue.
    assert app.amqp.router.route({}, "proj.send_receipt")["queue"].name == "shop"


def test_the_own_app_and_a_host_app_register_the_same_step_task() -> None:
    """``celery -A tasks`` is the same installation on Ravel's own configuration."""
    from tasks.app import create_app

    own = create_app()
    host = tasks.install(_host())
    host.loader.import_default_modules()
    for name in ("e2e_http_refund.check", "e2e_http_refund.pay"):
        mine, theirs = own.tasks[name], host.tasks[name]
        for option in (
            "acks_late",
            "reject_on_worker_lost",
            "acks_on_failure_or_timeout",
            "serializer",
            "ignore_result",
            "queue",
            "soft_time_limit",
            "time_limit",
        ):
            assert getattr(mine, option) == getattr(theirs, option), (name, option)
