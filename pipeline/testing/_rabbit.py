"""A private RabbitMQ node: its own node name, ports, Erlang cookie, epmd and files.

The shared node (``rabbit@localhost`` on 5672) is never touched: this node has a cookie of
its own, so even a mistyped node name could not reach the shared one, and it registers with
an epmd of its own, so nothing it starts outlives it.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import subprocess
import uuid
from pathlib import Path
from typing import Any

from pipeline.testing._server_base import (
    LOOPBACK,
    ChildServer,
    ServerError,
    end_session,
    free_port,
    port_open,
    spawn,
    which,
)

GUEST = "guest"  # the default user; RabbitMQ lets it in from loopback only


def scripts() -> Path:
    """The folder of the real ``rabbitmq-server`` script: Debian's /usr/sbin one is a wrapper
    that would run the node as the ``rabbitmq`` account and log to the shared node's files."""
    debian = Path("/usr/lib/rabbitmq/bin")
    if (debian / "rabbitmq-server").exists():
        return debian
    return Path(
        os.path.realpath(which("rabbitmq-server", "apt-get install rabbitmq-server"))
    ).parent


class RabbitServer(ChildServer):
    """A private RabbitMQ node on 127.0.0.1, user guest/guest, no plugins.

    Args:
        folder: its home (cookie), database, logs and configuration.
        port: the AMQP port; default a free one.
        consumer_timeout_ms: how long a delivery may stay unacknowledged before the node
            closes the channel (set it longer than the longest step, as production must).
        start: start now (the default), else call :meth:`start`.
    """

    start_timeout = 90.0

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        *,
        consumer_timeout_ms: int = 3_600_000,
        start: bool = True,
    ) -> None:
        """See the class docstring."""
        super().__init__(folder, port)
        self.node = f"ravel-{uuid.uuid4().hex[:8]}@localhost"
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.bin = scripts()
        self.epmd: subprocess.Popen[bytes] | None = None
        home = self.folder / "home"
        home.mkdir(exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text("".join(secrets.choice(string.ascii_uppercase) for _ in range(32)))
            cookie.chmod(0o400)  # Erlang refuses a cookie others can read
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "rabbitmq-env.conf").write_text("")  # not /etc's: it names the shared node
        (self.folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = {LOOPBACK}:{self.port}\n"
            f"consumer_timeout = {consumer_timeout_ms}\n"
            "log.console = false\n"
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        self.env.update(
            HOME=str(home),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS=LOOPBACK,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.folder / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.folder / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.folder / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.folder / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.folder / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(self.folder / "rabbitmq-env.conf"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_ADDRESS=LOOPBACK,
            ERL_EPMD_PORT=str(self.epmd_port),
        )
        if start:
            self.start()

    @property
    def url(self) -> str:
        """The broker URL of this node (default virtual host)."""
        return f"amqp://{GUEST}:{GUEST}@{LOOPBACK}:{self.port}//"

    @property
    def log_path(self) -> Path:
        """The node's output (its detailed log is under ``folder/log``)."""
        return self.folder / "rabbitmq-server.log"

    def _launch(self, timeout: float) -> None:
        if self.epmd is None or self.epmd.poll() is not None:
            epmd = which("epmd", "it comes with Erlang")
            self.epmd = spawn(
                [epmd, "-port", str(self.epmd_port), "-address", LOOPBACK],
                self.env,
                self.folder / "epmd.log",
            )
        self.proc = spawn([str(self.bin / "rabbitmq-server")], self.env, self.log_path)

    def _ready(self) -> bool:
        # The AMQP listener opens last; rabbitmqctl (an Erlang VM of ~0.5 s) confirms once.
        if not port_open(self.port):
            return False
        try:
            self.ctl("await_startup")
        except ServerError:
            return False
        return True

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl -n NODE <args>`` against this node; its output."""
        argv = [str(self.bin / "rabbitmqctl"), "-n", self.node, *args]
        try:
            done = subprocess.run(
                argv,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise ServerError(f"rabbitmqctl {' '.join(args)} took over {timeout:.0f}s") from None
        if done.returncode != 0:
            raise ServerError(
                f"rabbitmqctl {' '.join(args)} failed on {self.node}: "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )
        return done.stdout

    def _shutdown(self, timeout: float) -> None:
        self.ctl("stop", timeout=timeout)

    def delete_queue(self, name: str, vhost: str = "/") -> None:
        """Delete a queue and every message in it, as an operator's mistake would."""
        self.ctl("delete_queue", "-p", vhost, name)

    def list_queues(self, vhost: str = "/") -> list[dict[str, Any]]:
        """Each queue's name, messages (ready + unacked), durable flag and type."""
        out = self.ctl(
            "-q",
            "list_queues",
            "-p",
            vhost,
            "name",
            "messages",
            "durable",
            "type",
            "--formatter",
            "json",
        )
        queues: list[dict[str, Any]] = json.loads(out or "[]")
        return queues

    def close(self) -> None:
        """Stop the node and its epmd."""
        super().close()
        end_session(self.epmd)
        self.epmd = None
