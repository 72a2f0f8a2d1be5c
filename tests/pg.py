"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, started on a temporary
folder, listening on 127.0.0.1 on a free port, stopped afterwards.

``initdb`` and ``postgres`` refuse to run as root, so under root they run as the ``postgres`` user
(its folder handed to it). Where the package is missing the tests that need it skip, saying why --
except where ``IMGCLF_PG_TEST=required`` (our CI, which installs it): there they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def _bin() -> Path:
    """The newest installed server's programs (Debian: /usr/lib/postgresql/<version>/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0
    )
    return Path(os.environ.get("IMGCLF_PG_BIN", found[-1].parent if found else "/usr/lib/postgresql/15/bin"))


BIN = _bin()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="imgclf-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = _free_port()
        self.user = "postgres"
        self.databases = 0

    def _run(self, *cmd: str) -> None:
        if os.geteuid() == 0:
            cmd = ("runuser", "-u", "postgres", "--", *cmd)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.is_file() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stdout}{done.stderr}{log[-2000:]}")

    def start(self) -> PgServer:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(BIN / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8")
        self._ctl("start")
        return self

    def _ctl(self, action: str) -> None:
        # -F: no fsync (a throw-away server); the socket goes into our folder, not /var/run.
        self._run(
            str(BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-m",
            "fast",
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.root} -F",
            action,
        )

    def restart(self) -> None:
        self._ctl("restart")

    def stop(self) -> None:
        try:
            self._ctl("stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def new_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg2

        self.databases += 1
        name = f"t{self.databases}"
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute(f"CREATE DATABASE {name}")
        conn.close()
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"


def server_or_skip():
    """Start a server, or skip (fail where IMGCLF_PG_TEST=required) when PostgreSQL is not installed."""
    if not (BIN / "initdb").is_file():
        message = f"PostgreSQL is not installed ({BIN / 'initdb'} missing; apt-get install postgresql)"
        if os.environ.get("IMGCLF_PG_TEST") == "required":
            pytest.fail(message)
        pytest.skip(message)
    return PgServer().start()
