"""``iscsikit-demo``: the main job, end to end, against a real target on loopback.

Starts a private tgtd (its own IPC socket and a free port) with a CHAP-protected
target.  Then, first as an open-iscsi user would (:mod:`iscsikit.demo_cli`): a private
iscsikitd, ``iscsikit-adm`` discovery, CHAP and digests on the node record, ``-m node
-l``, ``-m session -P 3``, 1 MiB through the session's NBD export with ``nbdcopy``,
statistics, ``-u``.  Then through the Python API: discover, log in with mutual CHAP and
header/data digests, show what was negotiated, write 1 MiB through the userspace data
path, read it back, check it against tgtd's backing file, ping, log out, and show that a
wrong secret fails with iscsiadm's exit code.  Needs tgt and libnbd-bin installed (``tox
-e demo`` installs them); touches nothing outside temporary directories.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import iscsikit
from iscsikit.demo_cli import cli_flow
from iscsikit.lun.lun import Lun
from iscsikit.testing.tgtd import Tgtd

TARGET = "iqn.2024-01.org.iscsikit.demo:disk1"
INITIATOR = "iqn.2024-01.org.iscsikit.demo:initiator"
CHAP = iscsikit.Chap(
    "demo-user",
    "demo-secret-1234",
    username_in="demo-target",
    password_in="target-secret-5678",
    # tgt 1.0.85 speaks CHAP MD5 only (iscsikit also offers SHA1, SHA256, SHA3-256).
    algorithms="MD5",
)


#: What the demo sets on the node record for the command-line login.
NODE_SETTINGS = {
    "node.session.auth.authmethod": "CHAP",
    "node.session.auth.username": CHAP.username,
    "node.session.auth.password": CHAP.password,
    "node.session.auth.username_in": CHAP.username_in or "",
    "node.session.auth.password_in": CHAP.password_in or "",
    "node.conn[0].iscsi.HeaderDigest": "CRC32C",
    "node.conn[0].iscsi.DataDigest": "CRC32C",
}


def _show(title: str) -> None:
    print(f"\n== {title}")


def run(host: str = "127.0.0.1") -> int:
    with (
        tempfile.TemporaryDirectory(prefix="iscsikit-demo-") as tmp,
        Tgtd(Path(tmp), host=host) as tgtd,
    ):
        tid = tgtd.add_target(TARGET, luns=1)
        tgtd.add_account(CHAP.username, CHAP.password)
        tgtd.bind_account(CHAP.username, tid=tid)
        assert CHAP.username_in is not None and CHAP.password_in is not None
        tgtd.add_account(CHAP.username_in, CHAP.password_in)
        tgtd.bind_account(CHAP.username_in, tid=tid, outgoing=True)
        # tgt answers HeaderDigest=None to an offer of CRC32C alone unless told otherwise.
        tgtd.set_target_param(tid, "HeaderDigest", "CRC32C")
        tgtd.set_target_param(tid, "DataDigest", "CRC32C")
        print(f"tgtd {tgtd.portal}: target {TARGET} (1 LUN, mutual CHAP, CRC32C digests)")

        print("\n######## the command line, through iscsikitd ########")
        if cli_flow(tgtd, tid, TARGET, NODE_SETTINGS) != 0:
            return 1

        print("\n######## the Python API ########")

        _show(f"discovery at {tgtd.portal}")
        targets = iscsikit.discover(tgtd.portal, initiator_name=INITIATOR)
        for found in targets:
            print(f"{found.portal},{found.tpgt} {found.name}")

        target = next(t for t in targets if t.name == TARGET)
        _show(f"login to {target.name} at {target.portal}")
        with iscsikit.login(
            target.portal,
            target.name,
            chap=CHAP,
            header_digest="CRC32C",
            data_digest="CRC32C",
            initiator_name=INITIATOR,
        ) as session:
            print(f"logged in: TSIH {session.tsih}, ISID {session.isid}, TPGT {session.tpgt}")
            _show("negotiated parameters")
            width = max(len(k) for k in session.params)
            for key in sorted(session.params):
                print(f"{key:<{width}} = {session.params[key]}")
            _show("I/O on LUN 1 through the userspace data path")
            lun = Lun.attach(session, 1)
            inquiry = lun.geometry.inquiry
            print(
                f"LUN 1: {inquiry.vendor} {inquiry.product}, {lun.size} bytes, "
                f"{lun.block_size}-byte blocks"
            )
            data = os.urandom(1 << 20)
            offset = 4096 + 17  # unaligned on purpose: partial blocks are merged
            lun.write(offset, data)
            lun.flush()
            back = lun.read(offset, len(data))
            digest = hashlib.sha256(data).hexdigest()[:16]
            print(f"wrote {len(data)} bytes at offset {offset} (sha256 {digest}...)")
            if back != data:
                print("read back: DIFFERENT")
                return 1
            print(f"read back {len(back)} bytes: identical")
            on_disk = tgtd.backing_path(tid, 1).read_bytes()[offset : offset + len(data)]
            if on_disk != data:
                print("tgtd backing file: DIFFERENT")
                return 1
            print("tgtd backing file holds the same bytes")
            _show("NOP-Out ping")
            print(f"round trip {session.ping() * 1e6:.0f} µs")
            _show("logout")
        print(f"logged out of {target.name}")

        _show("a wrong CHAP secret is refused")
        try:
            iscsikit.login(
                target.portal,
                target.name,
                chap=iscsikit.Chap(CHAP.username, "wrong-secret-000"),
                initiator_name=INITIATOR,
                retries=0,
            )
        except iscsikit.IscsiError as exc:
            print(f"{exc} (iscsiadm exit code {int(exc.code)}: {exc.code.name})")
        else:
            print("unexpected: login with a wrong secret succeeded")
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="iscsikit-demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address for tgtd (::1 works)")
    args = parser.parse_args(argv)
    try:
        return run(args.host)
    except iscsikit.IscsiError as exc:
        print(f"iscsikit-demo: {exc}", file=sys.stderr)
        return int(exc.code)


if __name__ == "__main__":
    sys.exit(main())
