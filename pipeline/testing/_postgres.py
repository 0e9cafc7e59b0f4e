"""A private PostgreSQL cluster: ``initdb`` once, then ``pg_ctl`` start / stop, SIGKILL."""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from pipeline.testing._server_base import LOOPBACK, Server, ServerError, alive, kill_all, processes

SUPERUSER = "postgres"
# Small, but durable: fsync stays on because the nemesis checks what survives a SIGKILL.
DEFAULT_SETTINGS = {"shared_buffers": "16MB", "fsync": "on", "max_connections": "200"}


def bindir() -> Path:
    """The newest PostgreSQL server binaries: /usr/lib/postgresql/*/bin, else ``PATH``."""

    def version(path: str) -> int:
        found = re.search(r"/(\d+)/bin$", path)
        return int(found.group(1)) if found else 0

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if (Path(folder) / "initdb").exists():
            return Path(folder)
    raise ServerError(
        "PostgreSQL server binaries (initdb, pg_ctl) are not in "
        "/usr/lib/postgresql/*/bin nor on PATH (apt-get install postgresql)"
    )


def run_as() -> pwd.struct_passwd | None:
    """The account the server runs as: None (this one) unless we are root, which PostgreSQL
    refuses; then the ``postgres`` account."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise ServerError(
            "PostgreSQL refuses to run as root and there is no 'postgres' "
            "account to run it as (useradd --system postgres)"
        ) from None


class PostgresServer(Server):
    """A private PostgreSQL cluster with one database, trust authentication, on 127.0.0.1.

    When this process is root, the server runs as the ``postgres`` account, so its files must
    be reachable by that account: if ``folder`` is not (pytest's tmp_path is private to root),
    they go to a fresh folder under the system temp folder, linked as ``folder/pgdata`` and
    removed by :meth:`close`.

    Args:
        folder: where its data folder, socket and log go.
        port: default a free one.
        database: the database created at the first start.
        settings: server settings (``-c name=value``) over :data:`DEFAULT_SETTINGS`.
        start: start now (the default), else call :meth:`start`.
    """

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        *,
        database: str = "ravel",
        settings: dict[str, str] | None = None,
        start: bool = True,
    ) -> None:
        """See the class docstring."""
        super().__init__(folder, port)
        self.database = database
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.bin = bindir()
        self.account = run_as()
        self.base = self._base()
        self.data = self.base / "data"
        self.sockets = self.base / "sock"
        if start:
            self.start()

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the database."""
        return self.url_on(self.port)

    def url_on(self, port: int) -> str:
        """The database URL through another port on 127.0.0.1 (a proxy in front of it)."""
        return f"postgresql+psycopg://{SUPERUSER}@{LOOPBACK}:{port}/{self.database}"

    @property
    def log_path(self) -> Path:
        """The server's log."""
        return self.base / "postgres.log"

    def _prefix(self) -> list[str]:
        if self.account is None:
            return []
        return [
            "setpriv",
            f"--reuid={self.account.pw_uid}",
            f"--regid={self.account.pw_gid}",
            "--init-groups",
        ]

    def _base(self) -> Path:
        if self.account is None:
            return self.folder
        os.chown(self.folder, self.account.pw_uid, self.account.pw_gid)
        if self._reachable(self.folder):
            return self.folder
        base = Path(tempfile.mkdtemp(prefix="ravel-pg-"))
        os.chown(base, self.account.pw_uid, self.account.pw_gid)
        if not self._reachable(base):
            raise ServerError(f"the {SUPERUSER} account cannot write to {base}")
        (self.folder / "pgdata").symlink_to(base)
        return base

    def _reachable(self, folder: Path) -> bool:
        return subprocess.run([*self._prefix(), "test", "-w", str(folder)]).returncode == 0

    def _run(self, tool: str, *args: str, timeout: float = 60.0) -> str:
        argv = [*self._prefix(), str(self.bin / tool), *args]
        try:
            done = subprocess.run(
                argv,
                cwd=self.base,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise ServerError(
                f"{tool} did not finish in {timeout:.0f}s for {self}; {self.log_tail()}"
            ) from None
        if done.returncode != 0:
            raise ServerError(
                f"{tool} failed for {self}: {done.stderr.strip() or done.stdout}\n{self.log_tail()}"
            )
        return done.stdout

    def _postmaster(self) -> int | None:
        """The postmaster's pid if it runs on our data folder (the pid file outlives a kill)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return None
        return pid if alive(pid) and str(self.data).encode() in cmdline else None

    def running(self) -> bool:
        """Whether the postmaster is alive."""
        return self._postmaster() is not None

    def _launch(self, timeout: float) -> None:
        fresh = not (self.data / "PG_VERSION").exists()
        if fresh:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
            self.sockets.mkdir(exist_ok=True)
            if self.account is not None:
                os.chown(self.sockets, self.account.pw_uid, self.account.pw_gid)
        else:
            self._remove_stale_locks()
        options = [
            f"-p {self.port}",
            f"-k {self.sockets}",
            f"-c listen_addresses={LOOPBACK}",
            *(f"-c {name}={value}" for name, value in self.settings.items()),
        ]
        # -w: pg_ctl returns once the server accepts connections, after any crash recovery.
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            str(int(timeout)),
            "-o",
            " ".join(options),
            "start",
            timeout=timeout + 5,
        )
        if fresh:
            self._run(
                "createdb", "-h", LOOPBACK, "-p", str(self.port), "-U", SUPERUSER, self.database
            )

    def _remove_stale_locks(self) -> None:
        """Remove the lock files a killed postmaster leaves: while its pid is not yet reaped
        (or is reused), a new postmaster would take it for a live one and refuse to start."""
        for lock in (self.data / "postmaster.pid", *self.sockets.glob(f".s.PGSQL.{self.port}*")):
            lock.unlink(missing_ok=True)

    def _ready(self) -> bool:
        return (
            subprocess.run(
                [
                    str(self.bin / "pg_isready"),
                    "-q",
                    "-h",
                    LOOPBACK,
                    "-p",
                    str(self.port),
                    "-U",
                    SUPERUSER,
                    "-d",
                    self.database,
                ]
            ).returncode
            == 0
        )

    def stop(self, timeout: float = 30.0) -> None:
        """``pg_ctl stop -m fast``: clients are disconnected, everything committed is kept;
        SIGKILL if that takes over ``timeout``."""
        if not self.running():
            return
        try:
            self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(timeout)),
                "stop",
                timeout=timeout + 5,
            )
        except ServerError:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once; the next start recovers from
        the write-ahead log, as after a power cut."""
        pid = self._postmaster()
        if pid is not None:
            # Each backend has a session of its own: find them by parent, not by group.
            kill_all([pid, *processes(lambda ppid, _sid: ppid == pid)])

    def close(self) -> None:
        """Stop the server; remove its files if they live outside ``folder``."""
        super().close()
        if self.base != self.folder:
            shutil.rmtree(self.base, ignore_errors=True)
            (self.folder / "pgdata").unlink(missing_ok=True)
