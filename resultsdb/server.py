"""The results database on a server (``--results_db postgresql://USER@HOST:PORT/DB``), for many machines.

The URL is SQLAlchemy's; the connection is its driver's (psycopg2), wrapped to behave as the
``sqlite3`` connection ``ResultsDB`` uses: ``execute`` with ``?`` parameters, ``with conn:`` for a
transaction, rows readable by index and by name. So the schema and every query are the same text
on both; the few spellings that differ are translated in :func:`dialect` (one place).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any


class ServerError(Exception):
    """Any error of the server or its driver (connection lost, server restarting, constraint...)."""


def is_url(target: Any) -> bool:
    return isinstance(target, str) and "://" in target


def with_driver(url: str) -> str:
    """``postgresql://`` with the installed driver (psycopg2; SQLAlchemy 2.1 would pick psycopg 3)."""
    return "postgresql+psycopg2://" + url[len("postgresql://") :] if url.startswith("postgresql://") else url


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///PATH`` URL (None for other URLs): SQLite keeps its own connection."""
    return url[len("sqlite:///") :] if url.startswith("sqlite:///") else None


def dialect(sql: str) -> str:
    """SQLite's SQL as PostgreSQL reads it (outside quoted text): ``?`` -> ``%s``, an integer primary
    key -> SERIAL, REAL -> DOUBLE PRECISION (SQLite's REAL is 8 bytes, PostgreSQL's 4: the same runs
    must give the same numbers on either)."""

    def code(text: str) -> str:
        text = text.replace("%", "%%").replace("?", "%s")
        text = re.sub(r"\bINTEGER PRIMARY KEY\b", "SERIAL PRIMARY KEY", text)
        return re.sub(r"\bREAL\b", "DOUBLE PRECISION", text)

    parts = re.split(r"('(?:[^']|'')*')", sql)  # odd items are quoted literals
    return "".join(p.replace("%", "%%") if i % 2 else code(p) for i, p in enumerate(parts))


class ServerConnection:
    """A psycopg2 connection with the sqlite3 calls ResultsDB makes."""

    def __init__(self, url: str, timeout: float):
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        try:
            engine = sqlalchemy.create_engine(
                with_driver(url), poolclass=NullPool, connect_args={"connect_timeout": max(1, int(timeout))}
            )
            self.raw = engine.raw_connection()
        except Exception as e:  # noqa: BLE001 - the URL's driver or server: one message
            raise ServerError(_first_line(e)) from None
        from psycopg2.extras import DictCursor

        self.cursor_factory = DictCursor

    def execute(self, sql: str, params: Iterable[Any] = ()):
        try:
            cur = self.raw.cursor(cursor_factory=self.cursor_factory)
            cur.execute(dialect(sql), tuple(params))
            return cur
        except Exception as e:  # noqa: BLE001
            self.raw.rollback()
            raise ServerError(_first_line(e)) from None

    def executescript(self, script: str) -> None:
        for statement in (s.strip() for s in script.split(";")):
            if statement:
                self.execute(statement)

    def __enter__(self) -> ServerConnection:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.raw.commit()
            else:
                self.raw.rollback()
        except Exception as e:  # noqa: BLE001
            raise ServerError(_first_line(e)) from None

    def close(self) -> None:
        try:
            self.raw.close()
        except Exception:  # noqa: BLE001 - already gone with the server
            pass


def create_schema(conn: ServerConnection, schema: str, timeout: float) -> None:
    """Two processes creating the tables at once can collide in the server's catalog: retried."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with conn:
                conn.executescript(schema)
            return
        except ServerError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e).strip()
    return f"{type(getattr(e, 'orig', None) or e).__name__}: {text.splitlines()[0] if text else ''}"
