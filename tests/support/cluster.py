"""A throwaway three-node RabbitMQ cluster on loopback, for tests that lose a node.

Each node is a ``rabbitmq-server`` of this machine's installation, run as the
``rabbitmq`` user (whose Erlang cookie the nodes and ``rabbitmqctl`` share,
through ``HOME``) with a name, AMQP and distribution ports, data, logs,
configuration and plugins of its own under a temporary directory; the second
and third nodes join the first. Nothing here touches the machine's own node
(``rabbit@localhost`` on 5672): other names, other ports, other directories,
and the machine's ``rabbitmq-env.conf`` and ``rabbitmq.conf`` are not read.

:func:`rabbitmq_cluster` stops what it started, however the test ends: each
node with ``rabbitmqctl stop``, then any process still carrying one of the
nodes' names is killed (by pid). Node names carry the test process's pid, so a
run also kills what an earlier run that died left behind, and never another
run's nodes.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
RABBITMQ_USER = "rabbitmq"
NAME_PREFIX = "hookline-c"  # hookline-c<pid of the test process>-<letter>@localhost
_NODE_NAME = re.compile(rb"RABBITMQ_NODENAME=(" + NAME_PREFIX.encode() + rb"(\d+)-[a-z]@localhost)(?:\0|$)")
START_TIMEOUT = 90.0
CTL_TIMEOUT = 60.0


class ClusterError(AssertionError):
    """The cluster could not be started or driven; the message says what the machine refused."""


@dataclass
class Node:
    """One node of the test cluster: its name, ports, directory and process."""

    name: str
    port: int
    dist_port: int
    home: Path
    rabbit_settings: dict[str, int] = field(
        default_factory=dict
    )  # the rabbit application's, in advanced.config
    log: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.log = self.home / "server.log"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def environment(self) -> dict[str, str]:
        home = self.home
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": pwd.getpwnam(RABBITMQ_USER).pw_dir,  # where the shared .erlang.cookie is
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),  # empty: not the machine's
            "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
            "RABBITMQ_QUORUM_DIR": str(home / "quorum"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(home / "feature_flags"),
            "RABBITMQ_LOG_BASE": str(home / "log"),
            "RABBITMQ_PID_FILE": str(home / "rabbitmq.pid"),
            "RABBITMQ_SCHEMA_DIR": str(home / "schema"),
            "RABBITMQ_GENERATED_CONFIG_DIR": str(home / "config"),
            # Distribution on loopback only, as the machine's node does.
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def write_files(self) -> None:
        for directory in ("mnesia", "quorum", "log", "schema", "config"):
            (self.home / directory).mkdir(parents=True)
        (self.home / "rabbitmq-env.conf").write_text("")
        (self.home / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            # A test machine's disk may be fuller than RabbitMQ's default 50 MB margin allows.
            "disk_free_limit.absolute = 1MB\n"
        )
        (self.home / "enabled_plugins").write_text("[].\n")  # no management port to collide
        settings = ", ".join(f"{{{name}, {value}}}" for name, value in self.rabbit_settings.items())
        (self.home / "advanced.config").write_text(f"[{{rabbit, [{settings}]}}].\n")


@dataclass
class Cluster:
    """The running cluster a test drives: its URLs, who leads which queue, stopping and starting a node."""

    nodes: list[Node]
    stopped: set[str] = field(default_factory=set)

    @property
    def amqp_url(self) -> str:
        """``HOOKLINE_AMQP_URL`` naming every node, comma-separated."""
        return ",".join(node.url for node in self.nodes)

    def running(self) -> list[Node]:
        return [node for node in self.nodes if node.name not in self.stopped]

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def leaders(self) -> dict[str, str]:
        """Queue name -> the name of the node that leads it (quorum queues), asked of a running node."""
        out = rabbitmqctl(self.running()[0], "list_queues", "--quiet", "--no-table-headers", "name", "leader")
        return dict(line.split("\t")[:2] for line in out.splitlines() if "\t" in line)

    def stop(self, node: Node) -> None:
        """Stop ``node`` (the whole Erlang node), as a crashed or rebooted broker machine would be gone."""
        self.stopped.add(node.name)
        rabbitmqctl(node, "stop")

    def start(self, node: Node) -> None:
        """Start a stopped ``node`` again, with its data, as Kubernetes restarts a broker pod."""
        _start(node)
        _await_startup(node)
        self.stopped.discard(node.name)


@contextlib.contextmanager
def rabbitmq_cluster(size: int = 3, rabbit_settings: dict[str, int] | None = None) -> Iterator[Cluster]:
    """A running, joined cluster of ``size`` nodes; stopped and removed afterwards, whatever happens.

    ``rabbit_settings`` are set in each node's ``advanced.config`` (the rabbit application's environment).
    """
    _check_machine()
    _kill_leftovers_of_dead_runs()
    base = Path(tempfile.mkdtemp(prefix="hookline-cluster-"))
    nodes = _plan(base, size, rabbit_settings or {})
    try:
        _own_by_rabbitmq(base, nodes)
        for node in nodes:
            _start(node)
        for node in nodes:
            _await_startup(node)
        for node in nodes[1:]:
            _join(node, nodes[0])
        rabbitmqctl(nodes[0], "await_online_nodes", str(size), "--timeout", str(int(START_TIMEOUT)))
        yield Cluster(nodes)
    finally:
        _stop_all(nodes)
        shutil.rmtree(base, ignore_errors=True)


def rabbitmqctl(node: Node, *args: str, timeout: float = CTL_TIMEOUT) -> str:
    """``rabbitmqctl -n NODE ARGS`` as the rabbitmq user; its output, or ClusterError with its words."""
    command = [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", node.name, *args]
    result = subprocess.run(
        command,
        env=node.environment(),
        user=RABBITMQ_USER,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip().replace("\n", " | ")[-800:]
        raise ClusterError(
            f"rabbitmqctl -n {node.name} {' '.join(args)} failed ({result.returncode}): {said}"
        )
    return result.stdout


def _check_machine() -> None:
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        raise ClusterError(f"no RabbitMQ server in {RABBITMQ_BIN}: install Debian's rabbitmq-server")
    try:
        account = pwd.getpwnam(RABBITMQ_USER)
    except KeyError:
        raise ClusterError(f"no {RABBITMQ_USER} user: install Debian's rabbitmq-server") from None
    if os.geteuid() not in (0, account.pw_uid):
        raise ClusterError(
            f"the cluster's nodes run as {RABBITMQ_USER} and share its Erlang cookie: run the test as root "
            f"or as {RABBITMQ_USER}"
        )
    if not Path(account.pw_dir, ".erlang.cookie").exists():
        raise ClusterError(f"no Erlang cookie in {account.pw_dir}: start the machine's RabbitMQ once")


def _plan(base: Path, size: int, rabbit_settings: dict[str, int]) -> list[Node]:
    ports = _free_ports(2 * size)
    return [
        Node(
            name=f"{NAME_PREFIX}{os.getpid()}-{letter}@localhost",
            port=ports[2 * index],
            dist_port=ports[2 * index + 1],
            home=base / letter,
            rabbit_settings=rabbit_settings,
        )
        for index, letter in enumerate("abcdefg"[:size])
    ]


def _free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (held open together, so they differ)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _own_by_rabbitmq(base: Path, nodes: list[Node]) -> None:
    # The server drops to the rabbitmq user: it must own, and be able to reach, its directories.
    for node in nodes:
        node.write_files()
    account = pwd.getpwnam(RABBITMQ_USER)
    for path in [base, *base.rglob("*")]:
        os.chown(path, account.pw_uid, account.pw_gid)


def _start(node: Node) -> None:
    with node.log.open("ab") as log:
        node.process = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=node.environment(),
            user=RABBITMQ_USER,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _await_startup(node: Node) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not _port_open(node.port):
        if node.process is not None and node.process.poll() is not None:
            raise ClusterError(f"node {node.name} exited at start: {_tail(node.log)}")
        if time.monotonic() > deadline:
            raise ClusterError(f"node {node.name} did not listen on {node.port} in time: {_tail(node.log)}")
        time.sleep(0.25)
    rabbitmqctl(node, "await_startup", "--timeout", str(int(START_TIMEOUT)))


def _join(node: Node, first: Node) -> None:
    rabbitmqctl(node, "stop_app")
    rabbitmqctl(node, "join_cluster", first.name)
    rabbitmqctl(node, "start_app")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _tail(log: Path) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return " | ".join(text.strip().splitlines()[-8:]) or "(nothing logged)"


def _stop_all(nodes: list[Node]) -> None:
    for node in nodes:
        if node.process is not None and node.process.poll() is None:
            with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
                rabbitmqctl(node, "stop", timeout=30)
    for node in nodes:
        if node.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=10)
    _kill(pid for pid, name, _owner in _node_processes() if name in {node.name for node in nodes})


def _kill_leftovers_of_dead_runs() -> None:
    _kill(pid for pid, _name, owner in _node_processes() if not _alive(owner))


def _node_processes() -> Iterator[tuple[int, str, int]]:
    """``(pid, node name, pid of the test run that named it)`` of every process of a test cluster's node."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            found = _NODE_NAME.search((entry / "environ").read_bytes())
            command = (entry / "comm").read_text().strip()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if found is not None and command != "epmd":  # epmd serves every node, the machine's too
            yield int(entry.name), found[1].decode(), int(found[2])


def _kill(pids: Iterator[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
