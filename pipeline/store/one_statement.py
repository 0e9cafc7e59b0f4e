"""Several writes as one PostgreSQL statement: a row written, and the rows that go with it.

``WITH head AS (<UPDATE or INSERT> ... RETURNING id), ins_<table> AS (INSERT INTO <table>
SELECT r.* FROM head, jsonb_to_recordset(:rows) AS r(<columns>)) SELECT count(*) FROM
head``: the dependent rows are written only if the head row was (a fenced UPDATE that matched
nothing writes nothing), and on an autocommit connection the whole is one round trip and one
commit. Each table's rows travel as one JSON parameter, so the statement's text depends only
on the head and the tables, not on how many rows: psycopg caches its parsing and prepares it
on the server once it has run a few times (it does neither for statements over 50
parameters or 4 KB).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Connection, Dialect, MetaData, Table, TextClause, bindparam, text
from sqlalchemy.types import TypeEngine

from models.base import HexDigest
from pipeline.jsonutil import UNSTORABLE_IN_JSON
from pipeline.store._db import dumps, json_default

#: rows to write with the head row, only if it is written: (table, rows with the same keys)
Inserts = Sequence[tuple[Table, list[dict[str, Any]]]]
#: one table's part of a statement: its name and the columns given
_Shape = tuple[str, tuple[str, ...]]


def execute(
    conn: Connection,
    head: str,
    head_types: Mapping[str, TypeEngine[Any]],
    params: dict[str, Any],
    inserts: Inserts,
) -> int:
    """Write the head row and, if it was written, ``inserts``; return the head's row count.

    Args:
        conn: a PostgreSQL connection (autocommit: the statement commits on its own).
        head: an ``UPDATE`` or ``INSERT`` of one row, without ``RETURNING``, whose named
            parameters are typed by ``head_types`` (others, e.g. ``w_*`` guards, untyped).
        head_types: the column type of each typed parameter of ``head``.
        params: the head's parameters; the rows' parameters are added to it.
        inserts: the dependent rows; tables without rows are left out.
    """
    shape: list[_Shape] = []
    tables: dict[str, Table] = {}
    for table, rows in inserts:
        if not rows:
            continue
        columns = tuple(rows[0])
        params[f"rows_{table.name}"] = _rows_json(table, columns, rows)
        shape.append((table.name, columns))
        tables[table.name] = table
    metadata = next(iter(tables.values())).metadata if tables else None
    statement = _statement(conn.dialect, metadata, head, tuple(head_types.items()), tuple(shape))
    return int(conn.execute(statement, params).scalar_one())


def _rows_json(table: Table, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    """The rows as a JSON array: JSON columns through the store's codec (NUL and lone
    surrogates escaped as everywhere else), timestamps in ISO 8601, the rest as they are."""
    text_ = json.dumps(rows, default=json_default, allow_nan=False, separators=(",", ":"))
    if UNSTORABLE_IN_JSON.search(text_) is None:  # nothing to escape: one C-encoded pass
        return text_
    is_json = [isinstance(table.c[c].type, JSON) for c in columns]
    out = []
    for row in rows:
        cells = []
        for c, as_json in zip(columns, is_json, strict=True):
            value = row[c]
            if as_json:
                text_ = "null" if value is None else dumps(value)
            elif isinstance(value, datetime):
                text_ = f'"{value.isoformat()}"'
            else:
                text_ = json.dumps(value)
            cells.append(f"{json.dumps(c)}:{text_}")
        out.append("{" + ",".join(cells) + "}")
    return "[" + ",".join(out) + "]"


@lru_cache(maxsize=256)
def _statement(
    dialect: Dialect,
    metadata: MetaData | None,
    head: str,
    head_types: tuple[tuple[str, TypeEngine[Any]], ...],
    shape: tuple[_Shape, ...],
) -> TextClause:
    """The statement of one shape, built once (a handful of shapes occur in practice)."""
    binds = [bindparam(name, type_=kind) for name, kind in head_types]
    ctes = [f"head AS ({head} RETURNING id)"]
    for name, columns in shape:
        assert metadata is not None
        table = metadata.tables[name]
        defs = ", ".join(f"{c} {_json_type(table, c, dialect)}" for c in columns)
        values = ", ".join(_from_json(table, c) for c in columns)
        ctes.append(
            f"ins_{name} AS (INSERT INTO {name} ({', '.join(columns)}) SELECT {values} FROM "
            f"head, jsonb_to_recordset(CAST(:rows_{name} AS JSONB)) AS r({defs}))"
        )
    return text("WITH " + ",\n".join(ctes) + "\nSELECT count(*) FROM head").bindparams(*binds)


def _json_type(table: Table, column: str, dialect: Dialect) -> str:
    """The type a column's JSON value is read as: a digest arrives as its hex text."""
    if isinstance(table.c[column].type, HexDigest):
        return "text"
    return str(table.c[column].type.compile(dialect=dialect))


def _from_json(table: Table, column: str) -> str:
    """The value inserted into a column, from the record read out of the JSON."""
    if isinstance(table.c[column].type, HexDigest):
        return f"decode(r.{column}, 'hex')"
    return f"r.{column}"


__all__ = ["Inserts", "execute"]
