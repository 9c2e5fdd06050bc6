"""Run a golden case through iscsiadm (the oracle) and through iscsikit-adm, and compare.

How one case runs (:class:`Runner`):

1. **Starting database.** The case's setup steps run once per distinct setup (cached):
   through the oracle when open-iscsi is present ("live"), else through iscsikit-adm
   ("stored"). The database starts with a fixed ``iscsid.conf`` (``iscsid.conf`` beside
   this file, or one holding only ``iscsid.startup`` for cases that reach tgtd, where
   iscsiadm runs without iscsid and uses compiled defaults) and ``initiatorname.iscsi``.
2. **Invocation.** The setup's ``etc-iscsi`` is copied to a fresh oracle base and to
   ``<case>/root/etc/iscsi``; iscsiadm runs on the first, ``python -m iscsikit`` with
   ``ISCSIKIT_ROOT=<case>/root`` on the second, so both start from byte-identical DBs.
3. **Comparison** (:func:`compare`), against a :class:`Golden`: the live oracle outcome,
   or the stored one in ``expected/`` (``<case>.out``, ``.rc``, ``.err``, and ``.tree``
   when the invocation changed the database). stdout byte for byte (as a multiset of
   lines for :attr:`Case.unordered` cases), the exit code, and the database tree
   afterwards (file contents, symlinks with the DB-root prefix of their targets
   removed, directories).

Only what must differ between runs is normalised: the random tgtd ports become
``{PORT}`` / ``{EMPTY_PORT}`` in everything stored.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from iscsikit.testing import oracle as oracle_mod
from iscsikit.testing.oracle import Oracle
from iscsikit.testing.tgtd import Tgtd, TgtdError, free_port

from .cases import ALPHA, BETA, HIDDEN, INITIATOR, PLACEHOLDER_RE, Case, Step

__all__ = [
    "EXPECTED",
    "EXTRA_GOLDENS",
    "MINIMAL_CONF",
    "SCHEMA",
    "Golden",
    "Outcome",
    "Runner",
    "Targets",
    "Tree",
    "compare",
    "copy_db",
    "db_tree",
    "fake_sysfs",
    "iscsikit_env",
    "live_unavailable",
    "regenerating",
    "substitution_for",
]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
EXPECTED = HERE / "expected"
SCRIPTS = HERE / "scripts"
SCHEMA = REPO / "docs" / "iscsikit-adm.schema.json"
DEBIAN_CONF = HERE / "iscsid.conf"
MINIMAL_CONF = "iscsid.startup = /bin/true\n"
#: Stored goldens that are not cases of the battery (test_iscsiadm_script.py).
EXTRA_GOLDENS = frozenset({"iscsiadm-workflow"})

#: The database entries neither tool writes (configuration, not records).
_NOT_RECORDS = frozenset({"iscsid.conf", "initiatorname.iscsi"})
#: Top-level database directories: iscsiadm creates some of them on every start
#: (idbm_init), so their mere existence is not compared, only what they hold.
_TOP_DIRS = frozenset({"nodes", "send_targets", "isns", "static", "fw", "ifaces"})

Tree = dict[str, str]


def live_unavailable() -> str | None:
    """Why iscsiadm cannot be run here (the battery then uses the stored goldens)."""
    if os.environ.get("ISCSIKIT_GOLDEN_STORED") == "1":
        return "ISCSIKIT_GOLDEN_STORED=1"
    return oracle_mod.unavailable()


def regenerating() -> bool:
    """``ISCSIKIT_REGEN_GOLDEN=1``: rewrite expected/ from iscsiadm instead of checking it."""
    return os.environ.get("ISCSIKIT_REGEN_GOLDEN") == "1"


# -- tgtd ------------------------------------------------------------------------------


class Targets:
    """The two private tgtds the battery discovers: one exporting ALPHA and BETA, one
    exporting nothing to this initiator (SendTargets then finds no portals)."""

    def __init__(self, workdir: Path) -> None:
        self.full = _start_tgtd(workdir / "full", avoid=())
        try:
            self.full.add_target(ALPHA, luns=1, null=True)
            self.full.add_target(BETA, luns=1, null=True)
            self.empty = _start_tgtd(workdir / "empty", avoid=(self.full.port,))
        except BaseException:
            self.full.stop()
            raise
        try:
            # tgtd with no target at all drops the discovery login; a target this
            # initiator may not see makes SendTargets answer with nothing ("No portals").
            self.empty.add_target(HIDDEN, luns=0, acl=None)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.full.stop()
        self.empty.stop()

    @property
    def values(self) -> dict[str, str]:
        """Placeholder -> value, longest placeholder first (for expanding argv)."""
        return {
            "{EMPTY_PORTAL}": self.empty.portal,
            "{EMPTY_PORT}": str(self.empty.port),
            "{PORTAL}": self.full.portal,
            "{PORT}": str(self.full.port),
        }


# Ports from which a tgtd port is never picked: numbers that occur in records and output
# anyway (32768 is discovery.sendtargets.iscsi.MaxRecvDataSegmentLength), so replacing
# the port by a placeholder stays unambiguous.
_PORT_FLOOR = 33000


def _start_tgtd(workdir: Path, avoid: Sequence[int]) -> Tgtd:
    last: Exception | None = None
    for _ in range(10):
        port = free_port()
        if port < _PORT_FLOOR or port in avoid:
            continue
        try:
            return Tgtd(workdir, port=port)
        except TgtdError as exc:  # lost the race for the port: pick another
            last = exc
    raise TgtdError(f"could not start a golden tgtd: {last}")


class Substitution:
    """Placeholders <-> this run's values (the tgtd ports)."""

    def __init__(self, targets: Targets | None) -> None:
        self.values = targets.values if targets is not None else {}
        ports = {k: v for k, v in self.values.items() if k.endswith("_PORT}") or k == "{PORT}"}
        self._ports = [
            (re.compile(rf"(?<![0-9]){re.escape(v)}(?![0-9])"), k) for k, v in ports.items()
        ]

    def expand(self, argv: Sequence[str]) -> tuple[str, ...]:
        out = []
        for word in argv:
            expanded = word
            for placeholder, value in self.values.items():
                expanded = expanded.replace(placeholder, value)
            if PLACEHOLDER_RE.search(expanded):
                raise LookupError(f"{word!r}: the case needs tgtd but none was given")
            out.append(expanded)
        return tuple(out)

    def normalise(self, text: str) -> str:
        for pattern, placeholder in self._ports:
            text = pattern.sub(placeholder, text)
        return text

    def normalise_tree(self, tree: Tree) -> Tree:
        return {self.normalise(k): self.normalise(v) for k, v in tree.items()}


# -- databases -------------------------------------------------------------------------


def db_tree(db_root: Path, *, link_prefixes: Sequence[str] = ()) -> Tree:
    """Relative path -> file text, ``-> link target`` or ``<dir>``, for a whole DB.

    Link targets lose their DB-root prefix (``/etc/iscsi/`` for iscsiadm, the real
    directory for iscsikit-adm, and ``link_prefixes``: where a copied database was
    built); nothing else is normalised.
    """
    prefixes = [*link_prefixes, "/etc/iscsi", str(db_root)]
    out: Tree = {}
    for dirpath, dirnames, filenames in os.walk(db_root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(db_root))
            if rel in _NOT_RECORDS or rel in _TOP_DIRS:
                continue
            if path.is_symlink():
                target = os.readlink(path)
                for prefix in prefixes:
                    if target.startswith(prefix + "/"):
                        target = target[len(prefix) + 1 :]
                        break
                out[rel] = f"-> {target}"
            elif path.is_dir():
                out[rel] = "<dir>"
            else:
                out[rel] = path.read_text(errors="surrogateescape")
    return dict(sorted(out.items()))


def fresh_db(etc: Path, *, minimal_conf: bool) -> None:
    etc.mkdir(parents=True, exist_ok=True)
    conf = MINIMAL_CONF if minimal_conf else DEBIAN_CONF.read_text()
    (etc / "iscsid.conf").write_text(conf)
    (etc / "initiatorname.iscsi").write_text(f"InitiatorName={INITIATOR}\n")


def copy_db(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dst, symlinks=True)


def fake_sysfs(root: Path) -> None:
    """``<root>/sys`` as iscsiadm sees /sys in the oracle: its /sys/class holds the tcp
    transport and nothing else; /sys/firmware is the host's, which has no iBFT."""
    (root / "sys" / "firmware").mkdir(parents=True, exist_ok=True)
    tcp = root / "sys" / "class" / "iscsi_transport" / "tcp"
    tcp.mkdir(parents=True, exist_ok=True)
    (tcp / "caps").write_text("0x39\n")
    (tcp / "handle").write_text("18446744072102035520\n")


# -- outcomes and goldens --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """One tool's run of one invocation, in this run's terms (real ports)."""

    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str
    before: Tree
    after: Tree


@dataclass(frozen=True, slots=True)
class Golden:
    """What iscsiadm did, normalised: as stored in ``expected/`` and as checked."""

    name: str
    rc: int
    stdout: str
    stderr: str
    #: The whole database afterwards, or None when the invocation left it unchanged.
    tree: Tree | None = field(default=None, compare=True)

    @classmethod
    def from_outcome(cls, name: str, outcome: Outcome, subst: Substitution) -> Golden:
        tree = None if outcome.after == outcome.before else subst.normalise_tree(outcome.after)
        return cls(
            name,
            outcome.rc,
            subst.normalise(outcome.stdout),
            subst.normalise(outcome.stderr),
            tree,
        )

    @staticmethod
    def files(name: str) -> list[Path]:
        return [EXPECTED / f"{name}{ext}" for ext in (".out", ".rc", ".err", ".tree")]

    @classmethod
    def load(cls, name: str) -> Golden:
        out, rc, err, tree = cls.files(name)
        if not rc.exists():
            raise FileNotFoundError(
                f"no stored golden for {name}: run the battery where open-iscsi is installed "
                "with ISCSIKIT_REGEN_GOLDEN=1 (pytest tests/golden)"
            )
        return cls(
            name,
            int(rc.read_text()),
            out.read_text(),
            err.read_text() if err.exists() else "",
            json.loads(tree.read_text()) if tree.exists() else None,
        )

    def write(self) -> None:
        EXPECTED.mkdir(exist_ok=True)
        out, rc, err, tree = self.files(self.name)
        out.write_text(self.stdout)
        rc.write_text(f"{self.rc}\n")
        err.write_text(self.stderr)
        if self.tree is None:
            tree.unlink(missing_ok=True)
        else:
            tree.write_text(json.dumps(self.tree, indent=1, sort_keys=True) + "\n")


def stored_case_names() -> set[str]:
    return {p.name.rsplit(".", 1)[0] for p in EXPECTED.glob("*.rc")} if EXPECTED.is_dir() else set()


# -- comparison --------------------------------------------------------------------------


def _diff(expected: str, got: str, what: str) -> str:
    lines = difflib.unified_diff(
        expected.splitlines(keepends=True),
        got.splitlines(keepends=True),
        f"{what} (iscsiadm)",
        f"{what} (iscsikit-adm)",
    )
    return "".join(lines) or f"{what}: {expected!r} != {got!r}"


def _tree_diff(expected: Tree, got: Tree) -> str:
    notes = []
    for path in sorted(set(expected) | set(got)):
        if path not in got:
            notes.append(f"missing in iscsikit-adm's DB: {path}")
        elif path not in expected:
            notes.append(f"only in iscsikit-adm's DB: {path} = {got[path][:200]!r}")
        elif expected[path] != got[path]:
            notes.append(_diff(expected[path], got[path], path))
    return "\n".join(notes)


def compare(case: Case, golden: Golden, ours: Outcome, subst: Substitution) -> list[str]:
    """The differences between iscsikit-adm's outcome and the golden, as messages."""
    problems: list[str] = []
    if ours.rc != golden.rc:
        problems.append(f"exit code: iscsiadm {golden.rc}, iscsikit-adm {ours.rc}")
    stdout = subst.normalise(ours.stdout)
    if case.deliberate is None:
        if case.unordered:
            if sorted(stdout.splitlines()) != sorted(golden.stdout.splitlines()):
                problems.append(
                    "stdout (as a set of lines):\n" + _diff(golden.stdout, stdout, "stdout")
                )
        elif stdout != golden.stdout:
            problems.append("stdout:\n" + _diff(golden.stdout, stdout, "stdout"))
    if golden.tree is None:
        if ours.after != ours.before:
            problems.append(
                "iscsikit-adm changed the database, iscsiadm did not:\n"
                + _tree_diff(ours.before, ours.after)
            )
    else:
        after = subst.normalise_tree(ours.after)
        if after != golden.tree:
            problems.append("database afterwards:\n" + _tree_diff(golden.tree, after))
    if problems:
        problems.insert(0, f"argv: {' '.join(ours.argv)}")
        problems.append(f"iscsikit-adm stderr:\n{ours.stderr}")
        problems.append(f"iscsiadm stderr:\n{golden.stderr}")
    return problems


# -- the runner ----------------------------------------------------------------------------


def iscsikit_env(root: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ISCSIKIT_ROOT": str(root),
        "CI": os.environ.get("CI", ""),
        **extra,
    }
    for name in ("PYTHONPATH", "LANG", "LC_ALL"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def run_iscsikit(
    argv: Sequence[str], root: Path, *, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """``python -m iscsikit <argv>`` on the database under ``root``."""
    return subprocess.run(
        [sys.executable, "-m", "iscsikit", *argv],
        env=iscsikit_env(root),
        cwd=root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class SetupError(AssertionError):
    """A setup step did not exit 0."""


class Runner:
    """Builds starting databases (cached per setup) and runs invocations in ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.live = live_unavailable() is None
        self._snapshots: dict[tuple[object, ...], Path] = {}
        self._oracle_outcomes: dict[tuple[object, ...], Outcome] = {}
        self._counter = 0

    def _dir(self, kind: str, name: str) -> Path:
        self._counter += 1
        path = self.base / f"{self._counter:04d}-{kind}-{name}"
        path.mkdir(parents=True)
        return path

    # starting databases

    def oracle_snapshot(
        self, setup: tuple[Step, ...], minimal_conf: bool, subst: Substitution
    ) -> Path:
        """An oracle base whose etc-iscsi holds the database the steps build (cached)."""
        key = ("oracle", setup, minimal_conf, tuple(subst.values.items()))
        if key not in self._snapshots:
            base = self._dir("setup", _digest(key))
            fresh_db(base / "etc-iscsi", minimal_conf=minimal_conf)
            oracle = Oracle(base, initiator_name=INITIATOR)
            for step in setup:
                argv = subst.expand(step.argv)
                result = oracle.run(*argv, host_network=step.host_network)
                if result.returncode != 0:
                    raise SetupError(
                        f"setup step failed under iscsiadm (exit {result.returncode}): "
                        f"{' '.join(argv)}\n{result.stdout}{result.stderr}"
                    )
            self._snapshots[key] = base
        return self._snapshots[key]

    def iscsikit_snapshot(
        self, setup: tuple[Step, ...], minimal_conf: bool, subst: Substitution
    ) -> Path:
        """A root whose etc/iscsi holds the database the steps build with iscsikit-adm."""
        key = ("iscsikit", setup, minimal_conf, tuple(subst.values.items()))
        if key not in self._snapshots:
            root = self._dir("setup-iscsikit", _digest(key)) / "root"
            fresh_db(root / "etc" / "iscsi", minimal_conf=minimal_conf)
            fake_sysfs(root)
            for step in setup:
                argv = subst.expand(step.argv)
                result = run_iscsikit(argv, root)
                if result.returncode != 0:
                    raise SetupError(
                        f"setup step failed under iscsikit-adm (exit {result.returncode}): "
                        f"{' '.join(argv)}\n{result.stdout}{result.stderr}"
                    )
            self._snapshots[key] = root
        return self._snapshots[key]

    def start_db(self, case: Case, subst: Substitution) -> Path:
        """The etc/iscsi directory both tools start from."""
        if self.live:
            return self.oracle_snapshot(case.setup, case.minimal_conf, subst) / "etc-iscsi"
        return self.iscsikit_snapshot(case.setup, case.minimal_conf, subst) / "etc" / "iscsi"

    # invocations

    def oracle_outcome(self, case: Case, subst: Substitution) -> Outcome:
        """iscsiadm's run of the case (cached: test_regenerate reuses test_golden's)."""
        key = (case, tuple(subst.values.items()))
        if key not in self._oracle_outcomes:
            start = self.oracle_snapshot(case.setup, case.minimal_conf, subst) / "etc-iscsi"
            base = self._dir("iscsiadm", case.name)
            copy_db(start, base / "etc-iscsi")
            oracle = Oracle(base, initiator_name=INITIATOR)
            argv = subst.expand(case.argv)
            before = db_tree(oracle.etc)
            result = oracle.run(*argv, host_network=case.host_network)
            self._oracle_outcomes[key] = Outcome(
                argv, result.returncode, result.stdout, result.stderr, before, db_tree(oracle.etc)
            )
        return self._oracle_outcomes[key]

    def iscsikit_outcome(
        self, case: Case, subst: Substitution, extra: Sequence[str] = ()
    ) -> Outcome:
        start = self.start_db(case, subst)
        root = self._dir("iscsikit", case.name) / "root"
        etc = root / "etc" / "iscsi"
        copy_db(start, etc)
        fake_sysfs(root)
        argv = (*subst.expand(case.argv), *extra)
        # Links copied from the starting database point into the directory it was built in.
        before = db_tree(etc, link_prefixes=[str(start)])
        result = run_iscsikit(argv, root)
        after = db_tree(etc, link_prefixes=[str(start)])
        return Outcome(argv, result.returncode, result.stdout, result.stderr, before, after)

    def golden(self, case: Case, subst: Substitution) -> Golden:
        """The reference: iscsiadm live when it is here, else the stored golden."""
        if self.live:
            return Golden.from_outcome(case.name, self.oracle_outcome(case, subst), subst)
        return Golden.load(case.name)

    # scripts

    def run_script_as_oracle(
        self, oracle: Oracle, script: Path, args: Sequence[str], env: Mapping[str, str]
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell script where ``iscsiadm`` sees the oracle's scratch database.

        The recipe of :func:`iscsikit.testing.oracle._inner` (bind mounts in a private
        mount namespace), in the host's network namespace and without an iscsid.
        """
        Path("/run/lock/iscsi").mkdir(parents=True, exist_ok=True)
        inner = (
            'mount --bind "$1" /etc/iscsi && mount --bind "$2" /run/lock/iscsi && '
            'mount --bind "$3" /sys/class && shift 3 && exec "$@"'
        )
        return subprocess.run(
            [
                "unshare", "-m", "bash", "-c", inner, "golden-oracle",
                str(oracle.etc), str(oracle.lock), str(oracle.sys_class),
                "bash", str(script), *args,
            ],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )  # fmt: skip


def substitution_for(case: Case, request: pytest.FixtureRequest) -> Substitution:
    """The case's placeholders; starts the shared tgtds only for a case that needs them."""
    if case.needs_tgtd:
        targets: Targets = request.getfixturevalue("golden_targets")
        return Substitution(targets)
    return Substitution(None)


def _digest(key: tuple[object, ...]) -> str:
    return hashlib.sha1(repr(key).encode()).hexdigest()[:10]
