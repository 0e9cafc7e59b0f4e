"""``ravel serve``: the HTTP API under waitress, a production WSGI server (never Flask's own)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import click
from flask import Flask, Response, g, request

from pipeline.cli.errors import CliError
from pipeline.errors import PipelineError, StoreUnavailable
from pipeline.store import health
from pipeline.telemetry.logs import install as install_log_format
from pipeline.telemetry.logs import log_format, run_fields
from pipeline.web import keys as api_keys
from pipeline.web.app import create_app
from pipeline.web.body import MIN_BODY_BYTES

log = logging.getLogger("ravel.web")

#: waitress reads a whole body before the app sees it; past this it refuses it itself (413,
#: plain text) instead of buffering it to disk. Below it, the API answers 413 in JSON.
SERVER_BODY_CAP = 64 * 1024 * 1024


def _check_database() -> str:
    """The database's URL (masked); exit 1 when it is not migrated, warn when unreachable."""
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    try:
        state = health.schema_state()
    except StoreUnavailable as exc:
        log.warning("%s; serving anyway: requests answer 503 until it is reachable", exc)
        return "unreachable"
    except PipelineError as exc:
        raise CliError(f"ravel serve cannot start: {exc}") from None
    if state.problem:
        raise CliError(f"ravel serve cannot start: {state.problem}")
    return state.url


def _access_log(app: Flask) -> None:
    access = logging.getLogger("ravel.web.access")

    @app.before_request
    def _start() -> None:
        g.ravel_started = time.perf_counter()

    @app.after_request
    def _log(response: Response) -> Response:
        took = (time.perf_counter() - g.get("ravel_started", time.perf_counter())) * 1000
        run_id = (request.view_args or {}).get("run_id")
        access.info(
            "%s %s %s %.1fms",
            request.method,
            request.full_path.rstrip("?"),
            response.status_code,
            took,
            extra=run_fields(run_id) if isinstance(run_id, str) else None,
        )
        return response


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    install_log_format([handler])  # RAVEL_LOG_FORMAT=json: JSON lines; run ids as fields
    for name in ("ravel", "waitress"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on (0.0.0.0: every interface).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(1, 1000),
    default=8,
    show_default=True,
    help="Requests served at once.",
)
@click.option(
    "--timeout",
    type=click.IntRange(1, 3600),
    default=60,
    show_default=True,
    help="Seconds an idle or stalled connection is kept open.",
)
@click.option(
    "--connection-limit",
    type=click.IntRange(1, 100_000),
    default=100,
    show_default=True,
    help="Open connections at most; more wait in the backlog.",
)
@click.option(
    "--url-prefix",
    default="",
    metavar="PATH",
    help="Serve the API under this path, e.g. /api (default: at the root).",
)
@click.option(
    "--keys-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The API keys file (default: RAVEL_API_KEYS_FILE, else api-keys.toml under RAVEL_HOME).",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(1024, SERVER_BODY_CAP),
    envvar="RAVEL_API_MAX_BODY_BYTES",
    show_envvar=True,
    help="Largest request body (default: 1 MiB or 4 x RAVEL_MAX_INPUT_BYTES).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="info logs one line per request.",
)
def serve(
    host: str,
    port: int,
    threads: int,
    timeout: int,
    connection_limit: int,
    url_prefix: str,
    keys_file: Path | None,
    max_body_bytes: int | None,
    log_level: str,
) -> None:
    """Serve the HTTP API (routes in the README and at /openapi.json) with waitress."""
    import waitress  # only this command needs the server

    if url_prefix and not url_prefix.startswith("/"):
        raise CliError(f"--url-prefix must start with '/', e.g. /api (not {url_prefix!r})")
    path = keys_file or api_keys.keys_file()
    try:
        count = len(api_keys.load(path).keys)
        log_format()  # a RAVEL_LOG_FORMAT it does not know refuses to start, in one line
    except PipelineError as exc:
        raise CliError(f"ravel serve cannot start: {exc}") from None
    database = _check_database()
    _configure_logging(log_level)  # once nothing can refuse to start: tests invoke the checks
    config: dict[str, object] = {"RAVEL_API_KEYS_FILE": str(path)}
    if max_body_bytes is not None:
        config["RAVEL_API_MAX_BODY_BYTES"] = max_body_bytes
    app = create_app(url_prefix, config)
    _access_log(app)
    base = f"http://{host}:{port}{url_prefix.rstrip('/')}"
    log.info(
        "ravel serve %s (OpenAPI: %s/openapi.json), pid %s, %d threads, database %s, "
        "%d API key(s) from %s",
        base,
        base,
        os.getpid(),
        threads,
        database,
        count,
        path,
    )
    if not count:
        log.warning(
            "no API keys in %s: every request except openapi.json answers 401; create "
            "one with `ravel keys create NAME --role viewer`",
            path,
        )
    waitress.serve(
        app,
        host=host,
        port=port,
        threads=threads,
        channel_timeout=timeout,
        connection_limit=connection_limit,
        ident="ravel",
        max_request_body_size=max(SERVER_BODY_CAP, 4 * (max_body_bytes or MIN_BODY_BYTES)),
        clear_untrusted_proxy_headers=True,
    )
