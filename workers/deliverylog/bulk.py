"""Many rows in one call, the way each database takes them for the least work per row.

- PostgreSQL: each column travels as one array, unnested server-side. That is
  one statement of a few parameters however many rows, where a multi-row
  VALUES list costs the driver time per parameter and executemany costs the
  server a statement per row. The statement RETURNING the key tells how many
  rows it wrote.
- SQLite: one compiled statement run by the driver's ``executemany`` over
  plain tuples. The statement is compiled once per table and columns, and
  only the columns whose type converts values (times) are converted, a column
  at a time. Handing SQLAlchemy a list of dicts instead costs more than
  SQLite's own work: it builds and converts a parameter set per row, and a
  RETURNING row per row written. The driver's row count (rows inserted, or
  updated by an upsert whose WHERE held) tells how many rows it wrote.

The caller says what happens on a conflict (``finish``); the rest is here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

Row = dict[str, Any]
# Adds the ON CONFLICT clause to an INSERT of the dialect's own kind (it has ``excluded``).
Finish = Callable[[Any], Any]


class BulkInsert:
    """Inserts lists of rows (dicts of the same keys) on one dialect, SQLite statements compiled once."""

    def __init__(self, dialect: str) -> None:
        self._postgresql = dialect == "postgresql"
        self._compiled: dict[tuple[str, str, tuple[str, ...]], _Compiled] = {}

    def run(
        self, connection: Connection, table: sa.Table, rows: Sequence[Row], finish: Finish, kind: str
    ) -> int:
        """Insert ``rows`` into ``table`` as ``finish`` says; how many rows were written.

        ``kind`` names what ``finish`` does: statements of the same table,
        columns and kind are compiled once.
        """
        if not rows:
            return 0
        if self._postgresql:
            statement = finish(_unnested(table, rows)).returning(table.primary_key.columns[0])
            return len(connection.execute(statement).all())
        names = tuple(rows[0])
        key = (table.name, kind, names)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = _Compiled.of(connection, finish(sqlite.insert(table)), names)
        return connection.exec_driver_sql(compiled.sql, compiled.parameters(rows)).rowcount


class _Compiled:
    """A SQLite statement's text, the order its parameters go in, and what converts which of them."""

    def __init__(self, sql: str, order: Sequence[str], converters: dict[int, Callable[[Any], Any]]) -> None:
        self.sql = sql
        self._pick = itemgetter(*order)
        self._single = len(order) == 1
        self._converters = converters

    @classmethod
    def of(cls, connection: Connection, statement: Any, names: tuple[str, ...]) -> _Compiled:
        compiled = statement.compile(dialect=connection.dialect, column_keys=list(names))
        order = list(compiled.positiontup)
        types = {name: statement.table.c[name].type for name in names}
        converters = {
            position: converter
            for position, name in enumerate(order)
            if (converter := types[name].bind_processor(connection.dialect)) is not None
        }
        return cls(compiled.string, order, converters)

    def parameters(self, rows: Sequence[Row]) -> list[tuple[Any, ...]]:
        picked = [self._pick(row) for row in rows]
        if self._single:
            picked = [(value,) for value in picked]
        if not self._converters:
            return picked
        columns = list(zip(*picked, strict=True))
        for position, converter in self._converters.items():
            columns[position] = tuple(map(converter, columns[position]))
        return list(zip(*columns, strict=True))


def _unnested(table: sa.Table, rows: Sequence[Row]) -> Any:
    names = list(rows[0])
    arrays = [
        sa.bindparam(
            f"{name}_values",
            _column(rows, name, table.c[name].type),
            type_=postgresql.ARRAY(table.c[name].type),
        )
        for name in names
    ]
    values = sa.func.unnest(*arrays).table_valued(*names).render_derived()
    return postgresql.insert(table).from_select(names, sa.select(*(values.c[name] for name in names)))


def _column(rows: Sequence[Row], name: str, kind: sa.types.TypeEngine[Any]) -> list[Any]:
    """One column's values as one array; a float column's as floats only.

    JSON gives ``0`` for a float that happens to be whole (an attempt refused before any
    request lasted 0 s), and psycopg refuses an array that mixes ints and floats.
    """
    values = [row[name] for row in rows]
    if isinstance(kind, sa.Float):
        return [None if value is None else float(value) for value in values]
    return values
