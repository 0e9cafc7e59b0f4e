"""Rendering: stable JSON for machines, rich tables for people."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipeline.serialize import to_json

STATUS_STYLES = {
    "pending": "cyan",
    "running": "bold cyan",
    "sleeping": "blue",
    "waiting": "yellow",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "dim",
}


#: ``value`` as plain JSON types: the one JSON form the HTTP API uses too
to_jsonable = to_json


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    click.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False, allow_nan=False))


def compact(value: Any) -> str:
    """``value`` as one line of JSON (for a table cell); ``-`` for None."""
    if value is None:
        return "-"
    return json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"))


def when(value: datetime | None, *, millis: bool = False) -> str:
    """A timestamp as UTC text, ``-`` for None."""
    if value is None:
        return "-"
    text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f" if millis else "%Y-%m-%d %H:%M:%S")
    return text[:-3] if millis else text


def money(value: float) -> str:
    """A cost in US dollars."""
    return f"${value:.4f}"


def status_text(status: Any) -> Text:
    """A run status, coloured."""
    value = str(getattr(status, "value", status))
    return Text(value, style=STATUS_STYLES.get(value, ""))


def cell(value: Any) -> Text:
    """A table cell: user data is never read as rich markup."""
    if isinstance(value, Text):
        return value
    return Text("-" if value is None else str(value))


def console() -> Console:
    """A console on the current stdout; wide when it is not a terminal, so ids never wrap."""
    out = Console(highlight=False, soft_wrap=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 240
    return out


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    no_wrap: Sequence[str] = (),
) -> Table:
    """A rich table; columns named in ``no_wrap`` never wrap (ids, timestamps)."""
    result = Table(title=title, title_justify="left", header_style="bold")
    for name in columns:
        result.add_column(name, no_wrap=name in no_wrap, overflow="fold")
    for row in rows:
        result.add_row(*(cell(v) for v in row))
    return result


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    empty: str,
    title: str | None = None,
    no_wrap: Sequence[str] = (),
) -> None:
    """Print a table, or the ``empty`` sentence when there are no rows."""
    if not rows:
        click.echo(empty)
        return
    console().print(table(title, columns, rows, no_wrap=no_wrap))


def print_fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """Print ``name  value`` lines, names aligned and bold."""
    out = console()
    width = max((len(name) for name, _ in pairs), default=0)
    for name, value in pairs:
        out.print(Text.assemble((name.ljust(width), "bold"), "  ", cell(value)))
