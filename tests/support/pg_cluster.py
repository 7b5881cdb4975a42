"""A private PostgreSQL cluster a test can stop, starve and make refuse us: real outages."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # no stubs; only tests drive it directly
from sqlalchemy import URL

from tests.support.processes import free_port

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"  # PostgreSQL refuses to run as root
MAX_CONNECTIONS = 12
DATABASE = "evolink_jobs"


def available() -> bool:
    """Whether initdb and pg_ctl are on this machine."""
    return (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()


class PostgresCluster:
    """initdb + pg_ctl in a temporary directory, listening on 127.0.0.1 on a free port."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="evolink-jobs-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            uid = pwd.getpwnam(OS_USER)
            os.chown(self.root, uid.pw_uid, uid.pw_gid)

    def url(self, database: str = DATABASE) -> str:
        """The SQLAlchemy URL of a database in this cluster."""
        url = URL.create("postgresql+asyncpg", "postgres", None, "127.0.0.1", self.port, database)
        return url.render_as_string(hide_password=False)

    def _run(self, args: Sequence[str], *, check: bool = True) -> None:
        prefix = ["runuser", "-u", OS_USER, "--"] if self._as_postgres else []
        result = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=60, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed:\n{result.stdout}\n{result.stderr}")

    def init(self) -> None:
        """Create the cluster (trust authentication, durability off: it is thrown away)."""
        self._run(
            [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
             "--no-sync", "--no-instructions", "-E", "UTF8"]
        )  # fmt: skip
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": str(MAX_CONNECTIONS),
            "superuser_reserved_connections": "0",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
        }
        conf = "".join(f"{key} = {value}\n" for key, value in settings.items())
        with (self.data / "postgresql.conf").open("a") as file:  # root may write postgres's file
            file.write(conf)

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        log = self.root / "server.log"
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(log), "-w", "start"])

    def stop(self, mode: str = "fast", *, wait: bool = True) -> None:
        """Stop (`smart` waits for clients to leave; without `wait`, returns at once)."""
        self._run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w" if wait else "-W",
             "stop"],
            check=False,
        )  # fmt: skip

    def running(self) -> bool:
        """Whether the server process is up (in whatever state)."""
        return (self.data / "postmaster.pid").exists()

    def wait_stopped(self) -> None:
        """Wait until the server process is gone."""
        pid_file = self.data / "postmaster.pid"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not pid_file.exists():
                return
            time.sleep(0.05)
        raise RuntimeError("PostgreSQL did not stop")

    def destroy(self) -> None:
        """Stop it whatever state it is in, and remove its files."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    async def admin(self, database: str = "postgres") -> asyncpg.Connection:
        """A raw connection (not through the app) to run operator commands."""
        return await asyncpg.connect(
            host="127.0.0.1", port=self.port, user="postgres", database=database
        )

    async def execute(self, sql: str, *args: object, database: str = "postgres") -> None:
        """Run one operator statement on a fresh connection."""
        connection = await self.admin(database)
        try:
            await connection.execute(sql, *args)
        finally:
            await connection.close()

    async def terminate_sessions(self, database: str = DATABASE) -> None:
        """pg_terminate_backend every session connected to `database` (the app's)."""
        await self.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )

    async def take_every_slot(self) -> list[asyncpg.Connection]:
        """Hold every connection slot (`too many clients` for anyone else); the held ones.

        Backends we just terminated free their slots a moment later: keep taking until we hold
        them all.
        """
        held: list[asyncpg.Connection] = []
        deadline = time.monotonic() + 30
        while len(held) < MAX_CONNECTIONS:
            try:
                held.append(await self.admin())
            except asyncpg.TooManyConnectionsError:
                if time.monotonic() > deadline:
                    await release(held)
                    raise
                await asyncio.sleep(0.05)
        return held

    async def shut_down_smartly(self) -> asyncpg.Connection:
        """Begin a smart shutdown that waits for the returned client: meanwhile the server
        refuses new connections with 57P03 `the database system is shutting down`."""
        holder = await self.admin()
        self.stop("smart", wait=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                probe = await self.admin()
            except asyncpg.CannotConnectNowError:
                return holder
            await probe.close()
            await asyncio.sleep(0.05)
        raise RuntimeError("PostgreSQL did not begin its shutdown")


async def release(connections: list[asyncpg.Connection]) -> None:
    """Close held connections."""
    for connection in connections:
        with contextlib.suppress(Exception):
            await connection.close()
    await asyncio.sleep(0)
