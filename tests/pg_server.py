"""A throwaway PostgreSQL server for the tests: Debian's `postgresql` binaries, a cluster in a temporary folder.

`bin/test` installs the package when `initdb` is missing; nothing here is pre-started or set up by
hand. The cluster listens on a free loopback port with its socket in its own folder, trusts local
connections (no password), and is removed when the session ends. `initdb` refuses to run as root,
so as root the server runs as the `postgres` system user the package creates.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

SERVICE_USER = "postgres"
"""Who runs the server when the tests run as root (initdb and postgres refuse root)."""
_databases = itertools.count()


def find_binaries() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`: Debian keeps them out of PATH, one folder per version."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    for folder in folders:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


@dataclass
class PostgresServer:
    """A running cluster: where it listens, and how to make a database or stop and start it."""

    binaries: Path
    folder: Path
    port: int
    run_as: str | None
    durable: bool = False
    """Whether commits are flushed (the benchmark); tests run with fsync off, as nothing they check needs it."""

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        """A `postgresql://` URL for `database` over TCP on loopback (the password is ignored: trust)."""
        secret = f":{password}" if password else ""
        return f"postgresql://postgres{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self, *, password: str | None = None) -> str:
        """A fresh empty database; its URL (with `password` in it, which the server ignores: trust)."""
        name = f"journal_{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name, password=password)

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if self.run_as is not None:
            command = ("runuser", "-u", self.run_as, "--", *command)
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off"
        self._run(
            str(self.binaries / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`immediate`: as a lost machine, without a checkpoint)."""
        self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def log(self) -> str:
        path = self.folder / "log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def postgres_server(port: int, *, durable: bool = False) -> Iterator[PostgresServer]:
    """A new cluster in a temporary folder, started on `port`, stopped and removed at the end.

    Raises:
        RuntimeError: PostgreSQL is not installed (`bin/test` installs it), or the cluster did not start.
    """
    binaries = find_binaries()
    if binaries is None:
        raise RuntimeError(
            "PostgreSQL is not installed: the journal's PostgreSQL tests start a server of their own. "
            "Run bin/test (it installs Debian's postgresql package as root), or: apt-get install postgresql"
        )
    run_as = SERVICE_USER if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="pg-test-"))
    if run_as is not None:
        user = pwd.getpwnam(run_as)
        os.chown(folder, user.pw_uid, user.pw_gid)
    server = PostgresServer(binaries, folder, port, run_as, durable)
    try:
        server._run(
            str(binaries / "initdb"),
            "-D",
            str(server.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        try:
            server.start()
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}\n{server.log()}") from None
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(server.url(), connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
