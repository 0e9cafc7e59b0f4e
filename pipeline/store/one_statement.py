"""Several writes as one PostgreSQL statement: a row written, and the rows that go with it.

``WITH head AS (<UPDATE or INSERT> ... RETURNING id), ins_<table> AS (INSERT INTO <table>
SELECT v.* FROM head, (VALUES ...) AS v) SELECT count(*) FROM head``: the dependent rows are
written only if the head row was (a fenced UPDATE that matched nothing writes nothing), and on
an autocommit connection the whole is one round trip and one commit. The statement text
depends only on its shape (the head, the tables and their row counts), so psycopg prepares it
on the server once it has run a few times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Dialect, MetaData, Table, TextClause, bindparam, text
from sqlalchemy.types import TypeEngine

#: rows to write with the head row, only if it is written: (table, rows with the same keys)
Inserts = Sequence[tuple[Table, list[dict[str, Any]]]]
#: one table's part of a statement: its name, the columns given, how many rows
_Shape = tuple[str, tuple[str, ...], int]


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
        for i, row in enumerate(rows):
            params.update({f"{table.name}_{i}_{name}": row[name] for name in columns})
        shape.append((table.name, columns, len(rows)))
        tables[table.name] = table
    metadata = next(iter(tables.values())).metadata if tables else None
    statement = _statement(conn.dialect, metadata, head, tuple(head_types.items()), tuple(shape))
    return int(conn.execute(statement, params).scalar_one())


@lru_cache(maxsize=512)
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
    for name, columns, count in shape:
        assert metadata is not None
        table = metadata.tables[name]
        kinds = {c: table.c[c].type for c in columns}
        rows = []
        for i in range(count):
            cells = []
            for c in columns:
                binds.append(bindparam(f"{name}_{i}_{c}", type_=kinds[c]))
                # Typed: VALUES alone would make text of a JSON or NULL cell.
                cells.append(f"CAST(:{name}_{i}_{c} AS {kinds[c].compile(dialect=dialect)})")
            rows.append("(" + ", ".join(cells) + ")")
        ctes.append(
            f"ins_{name} AS (INSERT INTO {name} ({', '.join(columns)}) "
            f"SELECT v.* FROM head, (VALUES {', '.join(rows)}) AS v)"
        )
    return text("WITH " + ",\n".join(ctes) + "\nSELECT count(*) FROM head").bindparams(*binds)


__all__ = ["Inserts", "execute"]
