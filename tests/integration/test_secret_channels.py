"""CHAP secrets never leak: not into logs, exception text, JSON, ``-o show`` without
``-S``, nor any process's command line (what ``ps`` shows).

A real tgtd asks for mutual CHAP on discovery and on the target.  The secrets reach
iscsikit only through iscsid.conf (so no command line of the test itself carries them),
the daemon runs at its highest debug level, and every process's ``/proc/PID/cmdline`` is
sampled while the command line discovers and logs in.  Each check has a positive control
that sees the secret where it must be (``-S``, the record file), so none passes by
looking in the wrong place.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

import iscsikit
from iscsikit import Chap, IscsiErr, IscsiError
from iscsikit.testing.daemon import RunningDaemon, short_root
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.secrets:disk"
INITIATOR = "iqn.2024-01.test.secrets:initiator"
SECRETS = {
    "in": ("alice", "Alice-Secret-7f3a9"),
    "out": ("target", "Target-Secret-b81c4"),
    "disc": ("dalice", "Disc-Secret-5e2d7"),
    "disc_out": ("dtarget", "DiscT-Secret-0c96f"),
}
WRONG = "Wrong-Secret-44a1e"
ALL = [s for _, s in SECRETS.values()] + [WRONG]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    with Tgtd(tmp_path_factory.mktemp("secrets")) as tgtd:
        tid = tgtd.add_target(IQN, tid=1, lun_size=4 << 20)
        for user, secret in SECRETS.values():
            tgtd.add_account(user, secret)
        tgtd.bind_account("alice", tid=tid)
        tgtd.bind_account("target", tid=tid, outgoing=True)
        tgtd.bind_account("dalice")
        tgtd.bind_account("dtarget", outgoing=True)
        yield tgtd


def _conf(secret: str) -> str:
    (u, _), (ou, op), (du, dp), (dou, dop) = SECRETS.values()
    return (
        "node.session.auth.authmethod = CHAP\n"
        f"node.session.auth.username = {u}\nnode.session.auth.password = {secret}\n"
        f"node.session.auth.username_in = {ou}\nnode.session.auth.password_in = {op}\n"
        "discovery.sendtargets.auth.authmethod = CHAP\n"
        f"discovery.sendtargets.auth.username = {du}\n"
        f"discovery.sendtargets.auth.password = {dp}\n"
        f"discovery.sendtargets.auth.username_in = {dou}\n"
        f"discovery.sendtargets.auth.password_in = {dop}\n"
        "node.conn[0].timeo.login_timeout = 10\n"
        "node.session.initial_login_retry_max = 1\n"
    )


def _leaks(text: str) -> list[str]:
    return [s for s in ALL if s in text]


class CmdlineWatch:
    """Samples every process's command line until stopped: what ``ps`` could show."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CmdlineWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                    except OSError:
                        continue
                    self.seen.add(raw.replace(b"\0", b" ").decode(errors="replace"))
            self._stop.wait(0.01)


def test_secrets_stay_out_of_every_channel(target: Tgtd) -> None:
    root = short_root()
    (root / "etc/iscsi").mkdir(parents=True)
    (root / "etc/iscsi/iscsid.conf").write_text(_conf(SECRETS["in"][1]))
    with RunningDaemon(root, extra=("-d", "8")) as daemon:
        outputs: list[str] = []

        def adm(*args: str, code: int = 0) -> str:
            result = daemon.adm(*args)
            outputs.append(result.stdout + result.stderr)
            assert result.returncode == code, result.stdout + result.stderr + daemon.log
            return result.stdout

        with CmdlineWatch() as watch:
            adm("-m", "discovery", "-t", "st", "-p", target.portal)
            adm("-m", "node", "-T", IQN, "-p", target.portal, "-l")
            adm("-m", "session", "-P", "3")
            json.loads(adm("-m", "session", "-P", "3", "--output", "json"))
            adm("-m", "node", "-T", IQN, "-p", target.portal, "-u")
        # The sampler saw the command lines that ran (positive control) and no secret.
        assert any("-l" in line.split() and "iscsikit" in line for line in watch.seen)
        assert [line for line in watch.seen if _leaks(line)] == []

        # -o show and JSON mask the secrets; -S shows them (they are in the record).
        node = ("-m", "node", "-T", IQN, "-p", target.portal)
        shown = adm(*node, "-o", "show")
        assert "node.session.auth.password = ********" in shown
        as_json = adm(*node, "-o", "show", "--output", "json")
        json.loads(as_json)
        plain = adm(*node, "-o", "show", "-S")
        assert SECRETS["in"][1] in plain and SECRETS["out"][1] in plain
        disc = ("-m", "discoverydb", "-t", "st", "-p", target.portal)
        assert "********" in adm(*disc, "-o", "show")
        json.loads(adm(*disc, "-o", "show", "--output", "json"))
        json.loads(adm("-m", "node", "-P", "1", "--output", "json"))
        assert SECRETS["disc"][1] in adm(*disc, "-o", "show", "-S")
        outputs.pop()  # the discoverydb -S output
        assert SECRETS["in"][1] in adm(*node, "-o", "show", "-S", "--output", "json")
        outputs.pop()
        outputs.remove(plain)

        # A wrong secret: authentication fails (24) and says so without the secret.
        adm(*node, "-o", "update", "-n", "node.session.auth.password", "-v", WRONG)
        outputs.pop()
        failed = daemon.adm(*node, "-l")
        outputs.append(failed.stdout + failed.stderr)
        assert failed.returncode == 24, failed.stdout + failed.stderr
        assert "authorization failure" in failed.stderr.lower() or "auth" in failed.stderr

        for text in outputs:
            assert _leaks(text) == [], text
        log = daemon.log
        assert "Login" in log or "login" in log  # the debug log recorded the logins
        assert _leaks(log) == []

        # The record files hold the secrets (control) and are owner-only.
        records = list((daemon.root / "etc/iscsi").rglob("*"))
        holders = [p for p in records if p.is_file() and WRONG in p.read_text(errors="replace")]
        assert holders
        assert all(p.stat().st_mode & 0o077 == 0 for p in holders)


def test_exception_text_hides_secrets(target: Tgtd) -> None:
    (u, _), (ou, op), _, _ = SECRETS.values()
    with pytest.raises(IscsiError) as info:
        iscsikit.login(target.portal, IQN, chap=Chap(u, WRONG, ou, op), initiator_name=INITIATOR)
    assert info.value.code is IscsiErr.LOGIN_AUTH_FAILED
    text = "".join(traceback.format_exception(info.value)) + repr(info.value) + str(info.value)
    assert "auth" in text.lower()
    assert _leaks(text) == []
    assert _leaks(repr(Chap(u, WRONG, ou, op)) + str(Chap(u, WRONG, ou, op))) == []


def test_url_tools_take_passwords_from_the_environment(target: Tgtd) -> None:
    """libiscsi's convention: the URL names the users, the environment holds the
    secrets, so no command line shows them; the tool's output does not either."""
    (u, secret), (ou, op), _, _ = SECRETS.values()
    url = f"iscsi://{u}@{target.portal}/{IQN}/1?target_user={ou}"
    env = {**os.environ, "LIBISCSI_CHAP_PASSWORD": secret, "LIBISCSI_CHAP_TARGET_PASSWORD": op}
    argv = [sys.executable, "-m", "iscsikit.tools.perf", "-t", "1", "-n", "--json", url]
    with CmdlineWatch() as watch:
        result = subprocess.run(
            argv, check=False, env=env, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["iops"] > 0
    assert any("iscsikit.tools.perf" in line for line in watch.seen)
    assert [line for line in watch.seen if _leaks(line)] == []
    assert _leaks(result.stdout + result.stderr) == []
    # iscsikit-ls with a portal-only URL: discovery CHAP, the secret from the environment.
    du, dsecret = SECRETS["disc"]
    ls = [sys.executable, "-m", "iscsikit.tools.ls", f"iscsi://{du}@{target.portal}"]
    listed = subprocess.run(
        ls, check=False, env={**env, "LIBISCSI_CHAP_PASSWORD": dsecret},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert f"Target:{IQN} Portal:{target.portal},1" in listed.stdout
    assert _leaks(listed.stdout + listed.stderr) == []
    # Without the environment the user's password is missing: a clear error, exit 7.
    env.pop("LIBISCSI_CHAP_PASSWORD")
    result = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 7 and "LIBISCSI_CHAP_PASSWORD" in result.stderr
    listed = subprocess.run(ls, check=False, env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 7 and "LIBISCSI_CHAP_PASSWORD" in listed.stderr
