"""What ``iscsikit-adm`` imports to start: ``-m session`` (with a daemon answering and
without one) and ``-m node``.

Start-up time is measured in bench/ (issue 9: ``-m session`` with the daemon running
within 40 ms of ``python3 -c pass``), never asserted here.  These tests pin its cause
instead: each command runs in a fresh interpreter exactly as ``python -m iscsikit`` runs
it (:func:`runpy.run_module`), which reports the modules the command added to
``sys.modules``; modules the command does not need must not be among them, so a
regression fails with the module's name.  The interpreter runs without ``site`` (``-S``,
iscsikit and the site directories on ``PYTHONPATH``), so what a ``.pth`` file happens to
import on one machine hides nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import iscsikit
from iscsikit.ipc.protocol import RequestDecoder, RequestReceived, encode_result
from iscsikit.manager.sessions import DAEMON_SOCKET_NAME, session_from_sysfs, session_to_json
from iscsikit.sysfs import SysfsContext
from iscsikit.sysfs.fake import FakeSysfs, sample_kernel

#: Runs ``python -m iscsikit ARGS`` in this interpreter, then writes the exit code and the
#: modules the command imported (sys.modules after minus before) as JSON to OUT.
_RUNNER = """\
import runpy, sys
before = set(sys.modules)
out, sys.argv = sys.argv[1], ["iscsikit-adm", *sys.argv[2:]]
code = 0
try:
    runpy.run_module("iscsikit", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
imported = sorted(set(sys.modules) - before)
import json
with open(out, "w") as f:
    json.dump({"code": code, "modules": imported}, f)
"""

#: Never needed to start a command: asyncio and threads (the daemon's), the plugin
#: machinery and its entry points, the protocol stack and the data path, iscsid.conf.
NEVER = (
    "asyncio",
    "concurrent",
    "selectors",
    "socket",
    "ssl",
    "subprocess",
    "pluggy",
    "importlib.metadata",
    "configobj",
    "iscsikit.api",
    "iscsikit.proto",
    "iscsikit.plugin",
    "iscsikit.net",
    "iscsikit.lun",
    "iscsikit.nbd",
    "iscsikit.discovery",
    "iscsikit.daemon",
    "iscsikit.config.iscsid_conf",
    "iscsikit_drivers",
)
#: Not needed to list sessions: the records (and the key registry they are built on),
#: logging, ctypes, the record printers and JSON output, sysfs objects when the kernel
#: has no session, the login planner.
NOT_FOR_SESSIONS = (
    *NEVER,
    "threading",
    "logging",
    "ctypes",
    "iscsikit.records",
    "iscsikit.config.registry",
    "iscsikit.config.keytable",
    "iscsikit.cli.printing",
    "iscsikit.cli.jsonout",
    "iscsikit.sysfs.session",
    "iscsikit.sysfs.host",
    "iscsikit.sysfs.ibft",
    "iscsikit.sysfs.scsi",
    "iscsikit.sysfs.udev",
    "pyudev",
    "iscsikit.manager.login_plan",
)
#: ``-m node`` lists records: no daemon client, no sysfs.
NOT_FOR_NODES = (*NEVER, "iscsikit.ipc", "iscsikit.manager", "iscsikit.sysfs", "json")


@dataclass(frozen=True)
class Started:
    code: int
    stdout: str
    stderr: str
    modules: frozenset[str]

    def loaded(self, names: Sequence[str]) -> list[str]:
        """The imported modules that are ``names`` or inside one of them."""
        return sorted(
            m for m in self.modules if any(m == n or m.startswith(n + ".") for n in names)
        )


def start(root: Path, *args: str, site: bool = False) -> Started:
    """``python -m iscsikit ARGS`` with ``ISCSIKIT_ROOT=root``, in a fresh interpreter
    (with ``site`` when the command needs the installed drivers: an editable install
    finds ``iscsikit_drivers`` through a ``.pth`` file)."""
    out = root / "startup.json"
    package_dir = str(Path(iscsikit.__file__).resolve().parents[1])
    path = [package_dir, *(p for p in sys.path if p and os.path.isdir(p))]
    env = {**os.environ, "ISCSIKIT_ROOT": str(root), "PYTHONPATH": os.pathsep.join(path)}
    env.pop("ISCSIKIT_DB_ROOT", None)
    proc = subprocess.run(
        [sys.executable, *(() if site else ("-S",)), "-c", _RUNNER, str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=60,
        check=False,
    )
    assert out.exists(), proc.stderr
    report = json.loads(out.read_text())
    return Started(report["code"], proc.stdout, proc.stderr, frozenset(report["modules"]))


class StubDaemon:
    """iscsikitd's end of the IPC socket under ``root`` (docs/ipc.md framing, through
    :mod:`iscsikit.ipc.protocol`): it answers ``sessions`` with ``sessions`` and records
    every operation asked for.  Enough to start ``-m session`` the way it starts with the
    daemon running, without the daemon."""

    def __init__(self, root: Path, sessions: list[dict[str, Any]]) -> None:
        run_dir = root / "run" / "iscsikit"
        run_dir.mkdir(parents=True)
        self.ops: list[str] = []
        self.connections = 0
        self._sessions = sessions
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(run_dir / DAEMON_SOCKET_NAME))
        self._listener.listen(4)
        self._listener.settimeout(60)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            while True:
                conn, _ = self._listener.accept()
                self.connections += 1
                with conn:
                    self._answer(conn)
        except OSError:  # the listener was closed: the test is over
            return

    def _answer(self, conn: socket.socket) -> None:
        decoder = RequestDecoder()
        while data := conn.recv(65536):
            for event in decoder.feed(data):
                assert isinstance(event, RequestReceived), event
                self.ops.append(event.op)
                result = self._sessions if event.op == "sessions" else None
                conn.sendall(encode_result(event.id, result))

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accept() (Linux), then closes
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=10)


@pytest.fixture
def stub_daemon(tmp_path: Path) -> Iterator[StubDaemon]:
    daemon = StubDaemon(tmp_path, [])
    yield daemon
    daemon.close()


def test_session_with_the_daemon_running(stub_daemon: StubDaemon, tmp_path: Path) -> None:
    """The benchmarked command: the daemon answers, there are no sessions."""
    started = start(tmp_path, "-m", "session")
    assert (started.code, started.stdout) == (21, "")
    assert started.stderr == "iscsikit-adm: No active sessions.\n"
    assert started.loaded(NOT_FOR_SESSIONS) == []
    # One request on one connection: nothing else is asked before the listing.
    assert (stub_daemon.ops, stub_daemon.connections) == (["sessions"], 1)
    # It did go through the daemon client (so the lists above were checked on that path).
    assert "iscsikit.ipc.client" in started.modules


def test_session_listed_from_the_daemon(tmp_path: Path) -> None:
    """A session the daemon owns is printed (``-P 0``) without loading more."""
    kernel = tmp_path / "kernel"
    sample_kernel(kernel)
    info = session_from_sysfs(SysfsContext(kernel).sessions()[0])
    assert info is not None
    root = tmp_path / "root"
    daemon = StubDaemon(root, [session_to_json(info)])
    try:
        started = start(root, "-m", "session")
    finally:
        daemon.close()
    assert started.code == 0, started.stderr
    assert (
        started.stdout == "tcp: [1] 192.168.1.10:3260,1 iqn.2003-01.org.example:disk1 (non-flash)\n"
    )
    assert started.loaded(NOT_FOR_SESSIONS) == []
    assert daemon.ops == ["sessions"]


def test_session_without_a_daemon(tmp_path: Path) -> None:
    """No daemon socket and no kernel session: exit 21 from sysfs alone."""
    started = start(tmp_path, "-m", "session")
    assert (started.code, started.stderr) == (21, "iscsikit-adm: No active sessions.\n")
    assert started.loaded(NOT_FOR_SESSIONS) == []


def test_node_listing(tmp_path: Path) -> None:
    """``-m node`` on an empty database: the records, no daemon client, no sysfs."""
    started = start(tmp_path, "-m", "node")
    assert (started.code, started.stderr) == (21, "iscsikit-adm: No records found\n")
    assert started.loaded(NOT_FOR_NODES) == []
    # The check can fail: what node mode needs is what session mode must not load.
    assert {"iscsikit.records.store", "iscsikit.config.registry"} <= started.modules
    assert "iscsikit.records.store" in started.loaded(NOT_FOR_SESSIONS)


# -- every other mode (issue 15: start-up within 40 ms of ``python3 -c pass`` in every
# mode; bench/startup_bench.py) -------------------------------------------------------

TARGET = "iqn.2024-01.test.iscsikit:startup"
PORTAL = "127.0.0.1:3260"
#: The kernel's NETLINK_ISCSI codec: only HBA operations (``-o apply``, ``-C ...``) use it.
NETLINK = ("iscsikit.netlink",)
#: What a mode that calls no hook and looks up no transport must not load either.
NO_SESSIONS = ("iscsikit.ipc", "iscsikit.manager.sessions")
#: Listing ifaces builds a plugin manager for the offload-ports hook (pluggy, the hook
#: specifications), but without drivers when no offload host is there: nothing of
#: NEVER's protocol stack, entry points, drivers or event loop.
NOT_FOR_IFACES = (
    *(n for n in NEVER if n not in ("pluggy", "iscsikit.plugin", "iscsikit.proto")),
    "iscsikit.proto.ffp",
    "iscsikit.proto.login",
    "iscsikit.proto.digest",
    "crc32c",
    *NETLINK,
    *NO_SESSIONS,
)
#: (arguments, exit code, modules it must not load), each on a database holding one
#: discovery record and one node record.
MODES: list[tuple[tuple[str, ...], int, tuple[str, ...]]] = [
    (("--version",), 0, (*NEVER, *NETLINK, *NO_SESSIONS, "iscsikit.records", "iscsikit.sysfs")),
    (("-m", "discovery"), 0, NOT_FOR_NODES),
    (("-m", "discoverydb"), 0, NOT_FOR_NODES),
    (("-m", "node"), 0, NOT_FOR_NODES),
    (("-m", "node", "-T", TARGET, "-p", PORTAL), 0, NOT_FOR_NODES),
    (("-m", "session", "-P", "3"), 21, NOT_FOR_SESSIONS),
    (("-m", "iface"), 0, NOT_FOR_IFACES),
    (("-m", "iface", "-I", "default"), 0, (*NEVER, *NETLINK, *NO_SESSIONS)),
    (("-m", "fw"), 22, (*NEVER, *NETLINK, *NO_SESSIONS, "iscsikit.records")),
    (("-m", "host"), 21, (*NEVER, *NETLINK, *NO_SESSIONS, "iscsikit.records")),
]


@pytest.fixture(scope="module")
def records_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with one discovery record and one node record (made by the CLI)."""
    root = tmp_path_factory.mktemp("startup")
    for args in (
        ("-m", "discoverydb", "-t", "st", "-p", PORTAL, "-o", "new"),
        ("-m", "node", "-o", "new", "-T", TARGET, "-p", PORTAL),
    ):
        started = start(root, *args)
        assert started.code == 0, started.stderr
    return root


@pytest.mark.parametrize(("args", "code", "unneeded"), MODES, ids=[" ".join(m[0]) for m in MODES])
def test_mode_loads_only_what_it_needs(
    records_root: Path, args: tuple[str, ...], code: int, unneeded: tuple[str, ...]
) -> None:
    started = start(records_root, *args)
    assert started.code == code, started.stderr
    assert started.loaded(unneeded) == []


def test_help_loads_every_driver(records_root: Path) -> None:
    """``-h`` lists the installed drivers with their descriptions: the one command that
    imports them all (which also shows the checks above can see a driver)."""
    from importlib.metadata import entry_points

    started = start(records_root, "-h", site=True)
    assert started.code == 0, started.stderr
    wanted = {ep.value for ep in entry_points(group="iscsikit")}
    assert wanted and wanted <= started.modules, started.stdout[-800:]
    # Registering usertcp loads neither asyncio nor its session and data path.
    assert started.loaded(("asyncio", "iscsikit_drivers.usertcp.session")) == []


def test_iface_listing_asks_the_drivers_only_with_an_offload_host(tmp_path: Path) -> None:
    """An iscsi_tcp session's host (a software transport: one host per session) does not
    make ``-m iface`` import the drivers; a (simulated) qla4xxx host does, and its port's
    iface is listed, as the ``iscsikit_offload_ports`` hook reports it."""
    fake = FakeSysfs(tmp_path)
    fake.add_transport("tcp")
    fake.add_host(3, proc_name="iscsi_tcp", attrs={"hwaddress": "00:0a:0b:0c:0d:01"})
    started = start(tmp_path, "-m", "iface", site=True)
    assert started.code == 0, started.stderr
    assert started.loaded(("iscsikit_drivers", "importlib.metadata")) == []
    assert started.stdout.splitlines()[0].startswith("default ")

    fake.add_transport("qla4xxx")
    fake.add_host(5, proc_name="qla4xxx", attrs={"hwaddress": "00:0e:1e:00:00:05"})
    started = start(tmp_path, "-m", "iface", site=True)
    assert started.code == 0, started.stderr
    assert "iscsikit_drivers.offload.qla4xxx" in started.modules
    assert started.stdout.splitlines()[0].startswith("qla4xxx.00:0e:1e:00:00:05 qla4xxx,")
