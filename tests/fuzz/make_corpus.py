"""Build the seed corpus of every harness: ``python3 tests/fuzz/make_corpus.py``.

Writes tests/fuzz/corpus/<parser>/<name>, one input per file, in each harness's input
format (README.md).  Where the project has real traffic or real files, the seeds are
made of them:

* PDUs: tests/unit/proto/vectors/cap-*.vec, captured between libiscsi 1.19 and tgtd
  1.0.85 over loopback (see that directory's README), and the syn-* vectors; login and
  SendTargets exchanges played with iscsikit.testing.faketarget (CHAP, mutual CHAP);
* records: the files iscsiadm 2.1.8 wrote in the golden tests (tests/golden/expected/
  *.tree), iscsid.conf: the golden test's, conf/iscsid.conf and the host's
  /etc/iscsi/iscsid.conf (open-iscsi's packaged file) when present;
* CLI: the argv of every golden case (tests/golden/cases.py); for the record modes'
  end-to-end harness, those of node, iface and discoverydb without login or discovery;
* netlink: the golden vectors of tests/unit/netlink (built from the kernel's structs);
* IPC, NBD, iSNS: messages built by the encoders and the tests' helpers, shaped after
  what the daemon's client, nbdcopy / qemu-nbd and open-isns's isnsd send.

Existing files are replaced; files the fuzzer added later (by ``-merge``) are kept.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import sys
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit" / "netlink"), str(ROOT / "tests")]

from iscsikit.ipc.protocol import encode_error, encode_request, encode_result  # noqa: E402
from iscsikit.proto.login import ChapSecrets, LoginConfig, LoginMachine  # noqa: E402
from iscsikit.proto.pdu import (  # noqa: E402
    R2T,
    AsyncMessage,
    DataIn,
    LoginRequest,
    NopIn,
    Reject,
    ScsiResponse,
    TextResponse,
    encode_pdu,
)
from iscsikit.testing.faketarget import FakeTarget, FakeTargetConfig  # noqa: E402

CORPUS = HERE / "corpus"
VECTORS = ROOT / "tests" / "unit" / "proto" / "vectors"
NO_CHUNKS = b"\xff\xff"  # sizes 256, 256: the stream arrives in big chunks


def write(parser: str, name: str, data: bytes) -> None:
    directory = CORPUS / parser
    directory.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]
    (directory / safe).write_bytes(data)


def vectors() -> Iterable[tuple[str, bytes, bool, bool]]:
    """(name, bytes, header_digest, data_digest) of every golden PDU vector."""
    for path in sorted(VECTORS.glob("*.vec")):
        text = path.read_text()
        hd = re.search(r"^header_digest = True", text, re.M) is not None
        dd = re.search(r"^data_digest = True", text, re.M) is not None
        body = text.split("[bytes]", 1)[1].split("[fields]", 1)[0]
        yield path.stem, bytes.fromhex("".join(body.split())), hd, dd


def login_exchanges() -> Iterable[tuple[str, list[bytes], int]]:
    """Target-side PDU bytes of whole logins with the fake target: (name, pdus, flags)."""
    setups = [
        ("none", None, None, 0),
        ("chap", ("alice", "alice-secret-1"), None, 1),
        ("mutual", ("alice", "alice-secret-1"), ("tgt", "target-secret-2"), 3),
        ("discovery", None, None, 0x80),
    ]
    for name, account, outgoing, flags in setups:
        secrets = None
        if account:
            secrets = ChapSecrets(*account, *(outgoing or ()))
        machine = LoginMachine(
            LoginConfig(
                initiator_name="iqn.2024-01.test:i",
                isid=b"\x80\x00\x00\x00\x00\x01",
                target_name=None if flags & 0x80 else "iqn.2024-01.test.fake:disk",
                chap=secrets,
                operational={"HeaderDigest": "CRC32C,None", "MaxBurstLength": "65536"},
            ),
            random_bytes=lambda n: bytes(range(1, n + 1)),
        )
        target = FakeTarget(
            FakeTargetConfig(
                accounts=dict([account]) if account else None, outgoing=outgoing, extra_rounds=1
            ),
            random_bytes=lambda n: bytes(range(101, 101 + n)),  # as fuzz_login's target
        )
        req: object = machine.start()
        out: list[bytes] = []
        while isinstance(req, LoginRequest):
            (rsp,) = target.receive(req)
            out.append(encode_pdu(rsp))
            req = machine.receive(rsp)
        yield name, out, flags


def pdu_seeds() -> None:
    for name, data, hd, dd in vectors():
        write(
            "pdu",
            name,
            bytes(
                [
                    hd
                    | dd << 1
                    | (4 if "request" in name or "command" in name or "out" in name else 0)
                    | 0x10
                ]
            )
            + NO_CHUNKS
            + data,
        )
        write(
            "pdu",
            name + "-fixed-digests",
            bytes([hd | dd << 1 | 8 | 0x10]) + NO_CHUNKS + strip_digests(data, hd, dd),
        )
    for name, pdus, _ in login_exchanges():
        write("pdu", f"login-{name}", bytes([0x10]) + b"\x07\x30" + b"".join(pdus))


def strip_digests(data: bytes, hd: bool, dd: bool) -> bytes:
    ahs = data[4] * 4
    dsl = int.from_bytes(data[5:8], "big")
    head = data[: 48 + ahs]
    rest = data[48 + ahs + (4 if hd else 0) :]
    return head + rest[: dsl + (-dsl & 3)]


def ffp_seeds() -> None:
    # The harness's connection: ITT 1 reads 512 bytes, ITT 2 reads 96 KiB, ITT 3 writes
    # 3000 bytes, ITT 4 is the ping; StatSN starts at 0x2000, CmdSN at 1.
    statsn = iter(range(0x2000, 0x3000))

    def win() -> dict[str, int]:
        return {"expcmdsn": 1, "maxcmdsn": 16}

    read0 = DataIn(
        final=True,
        status_present=True,
        status=0,
        itt=1,
        statsn=next(statsn),
        datasn=0,
        buffer_offset=0,
        data=bytes(range(256)) * 2,
        **win(),
    )
    big = [
        DataIn(itt=2, datasn=i, buffer_offset=i * 8192, data=b"\xab" * 8192, **win())
        for i in range(12)
    ]
    big_end = ScsiResponse(itt=2, statsn=next(statsn), **win())
    r2t = R2T(
        itt=3,
        ttt=0x77,
        r2tsn=0,
        buffer_offset=0,
        desired_data_transfer_length=3000,
        statsn=0x2002,
        **win(),
    )
    write_end = ScsiResponse(itt=3, statsn=next(statsn), **win())
    nop = NopIn(itt=4, ttt=0xFFFFFFFF, statsn=next(statsn), data=b"ping", **win())
    check = ScsiResponse(
        itt=1,
        status=2,
        statsn=0x2000,
        data=b"\x00\x12\x70\x00\x05\x00\x00\x00\x00\x0a" + bytes(10),
        **win(),
    )
    reject = Reject(reason=9, statsn=0x2000, data=bytes(48), **win())
    async_logout = AsyncMessage(async_event=1, statsn=0x2000, parameter3=5, **win())
    text = TextResponse(final=True, itt=0xFFFFFFFF, statsn=0x2000, **win())
    streams = {
        "read-small": [read0],
        "read-direct": [*big, big_end],
        "write-r2t": [r2t, write_end],
        "ping": [nop],
        "check-condition": [check],
        "reject": [reject],
        "async-logout": [async_logout],
        "text": [text],
        "all": [read0, r2t, nop, *big, big_end, write_end],
    }
    for name, pdus in streams.items():
        raw = b"".join(encode_pdu(p) for p in pdus)
        write("ffp", name, b"\x00" + NO_CHUNKS + raw)
        write("ffp", name + "-digests", b"\x0b" + b"\x10\x7f" + raw)
        write("ffp", name + "-scatter", b"\x04" + b"\x2f\xff" + raw)
    for name, data, hd, dd in vectors():
        if "in" in name or "response" in name or "r2t" in name or "reject" in name:
            write("ffp", name, bytes([hd | dd << 1]) + NO_CHUNKS + data)


def login_seeds() -> None:
    for name, pdus, flags in login_exchanges():
        for skip in range(min(3, len(pdus))):
            write(
                "login",
                f"fake-{name}-after-{skip}",
                bytes([flags | skip << 2 | 0x10]) + NO_CHUNKS + b"".join(pdus[skip:]),
            )
    for name, data, _, _ in vectors():
        if "login-response" in name:
            flags = 0x90 if "discovery" in name else 0x10
            write("login", name, bytes([flags]) + NO_CHUNKS + data)


def text_seeds() -> None:
    for name, data, hd, _ in vectors():
        ahs = data[4] * 4
        dsl = int.from_bytes(data[5:8], "big")
        start = 48 + ahs + (4 if hd else 0)
        segment = data[start : start + dsl]
        if segment and b"=" in segment:
            stage = 1 << 1 if "login" in name else 3 << 1
            write("text", name, bytes([stage | 0x10]) + NO_CHUNKS + segment)
            write("text", name + "-target", bytes([1 | stage]) + b"\x03\x10" + segment)


def sendtargets_seeds() -> None:
    for name, data, _, _ in vectors():
        if "text-response" in name:
            write("sendtargets", name, b"\x03" + NO_CHUNKS + data)
    answers = {
        "ipv6-and-names": b"TargetName=iqn.2024-01.test:a\0TargetAddress=[fe80::1]:3261,2\0"
        b"TargetAddress=host.example:3260,1\0TargetName=iqn.2024-01.test:b\0",
        "no-address": b"TargetName=iqn.2024-01.test:only\0TargetAlias=x\0",
    }
    for name, text in answers.items():
        pdu = TextResponse(final=True, itt=1, statsn=1, expcmdsn=2, maxcmdsn=10, data=text)
        write("sendtargets", name, b"\x03" + NO_CHUNKS + encode_pdu(pdu))
        first = TextResponse(
            final=False, cont=True, itt=1, ttt=5, statsn=1, expcmdsn=2, maxcmdsn=10, data=text[:20]
        )
        rest = TextResponse(final=True, itt=1, statsn=2, expcmdsn=3, maxcmdsn=10, data=text[20:])
        write(
            "sendtargets",
            name + "-continued",
            b"\x01" + NO_CHUNKS + encode_pdu(first) + encode_pdu(rest),
        )


def records_seeds() -> None:
    seen: set[bytes] = set()
    kinds = {"nodes": 0, "ifaces": 1, "send_targets": 2, "isns": 3}
    for tree in sorted((ROOT / "tests" / "golden" / "expected").glob("*.tree")):
        for path, content in json.loads(tree.read_text()).items():
            if not isinstance(content, str) or not content.startswith("# BEGIN RECORD"):
                continue
            kind = next((v for k, v in kinds.items() if path.startswith(k)), 0)
            data = bytes([kind]) + content.encode()
            digest = hashlib.sha1(data).digest()
            if digest in seen or len(seen) >= 60:
                continue
            seen.add(digest)
            write("records", f"{tree.stem}-{Path(path).name}", data)
    write("records", "portal-name", b"\x00" + b"192.0.2.1,3260,1\n# BEGIN RECORD 2.1.8\n")
    write("records", "link-name", b"\x00" + b"iqn.2024-01.test:a,[fe80::1],3260,1,default\n")


def iscsid_conf_seeds() -> None:
    for name, path in [
        ("golden", ROOT / "tests" / "golden" / "iscsid.conf"),
        ("conf", ROOT / "conf" / "iscsid.conf"),
        ("debian-open-iscsi", Path("/etc/iscsi/iscsid.conf")),
    ]:
        if path.is_file():
            write("iscsid_conf", name, path.read_bytes())


def cli_seeds() -> None:
    from golden.cases import CASES

    modes = {"node", "iface", "discoverydb"}
    for case in CASES:
        argv = [w for w in case.argv if "{" not in w]
        data = b"\0".join(w.encode() for w in argv)
        write("cli", case.name, data)
        if modes.intersection(argv) and not {"-l", "-u", "-D", "-L", "-U"}.intersection(argv):
            write("cli_modes", case.name, data)


def ipc_seeds() -> None:
    requests = {
        "sessions": ("sessions", {}),
        "login": (
            "login",
            {
                "node": {"node.name": "iqn.2024-01.test:a", "node.conn[0].address": "127.0.0.1"},
                "wait": True,
            },
        ),
        "logout": ("logout", {"sid": 3}),
        "stats": ("stats", {"sid": 1}),
    }
    for i, (name, (op, args)) in enumerate(requests.items()):
        write("ipc", "request-" + name, b"\x04" + NO_CHUNKS + encode_request(i, op, args))
        body = encode_request(i, op, args)[4:]
        write("ipc", "request-body-" + name, b"\x02" + NO_CHUNKS + body)
    write("ipc", "reply-result", b"\x01" + NO_CHUNKS + encode_result(1, [{"sid": 1}]))
    write(
        "ipc",
        "reply-error",
        b"\x03" + NO_CHUNKS + encode_error(2, 21, "no records", "NoObjectsFoundError")[4:],
    )


def nbd_seeds() -> None:
    magic = 0x25609513

    def req(cmd: int, handle: int, offset: int, length: int, flags: int = 0) -> bytes:
        return struct.pack(">IHHQQI", magic, flags, cmd, handle, offset, length)

    ihaveopt = 0x49484156454F5054

    def opt(option: int, payload: bytes) -> bytes:
        return struct.pack(">QII", ihaveopt, option, len(payload)) + payload

    transmission = (
        req(0, 2, 0, 4096)
        + req(1, 4, 4096, 8)
        + b"\x01" * 8
        + req(3, 6, 0, 0)
        + req(4, 8, 0, 65536)
        + req(6, 10, 8192, 4096, 2)
        + req(1, 12, 0, 4, 1)
        + b"abcd"
        + req(2, 0, 0, 0)
    )
    write("nbd", "transmission-export-name", b"\x01" + NO_CHUNKS + transmission)
    write("nbd", "transmission-go-structured", b"\x07" + NO_CHUNKS + transmission)
    write("nbd", "transmission-read-only", b"\x09" + b"\x03\x0b" + transmission)
    # The whole negotiation as nbdcopy / qemu-nbd run it: flags, LIST, INFO, GO.
    info = struct.pack(">I", 4) + b"disk" + struct.pack(">HHHH", 3, 0, 1, 2)
    handshake = struct.pack(">I", 3) + opt(8, b"") + opt(3, b"") + opt(6, info) + opt(7, info)
    write("nbd", "handshake-libnbd", b"\x00" + NO_CHUNKS + handshake + req(0, 1, 0, 512))
    write(
        "nbd",
        "handshake-oldstyle-name",
        b"\x00"
        + NO_CHUNKS
        + struct.pack(">I", 1)
        + opt(1, b"other")
        + req(0, 1, 0, 512)
        + req(2, 2, 0, 0),
    )
    write("nbd", "handshake-abort", b"\x00" + NO_CHUNKS + struct.pack(">I", 3) + opt(2, b""))


def netlink_seeds() -> None:
    import test_netlink_events as events
    import test_netlink_requests as requests

    for i, (message, data) in enumerate(events.CASES):
        write("netlink", f"event-{i:02d}-{type(message).__name__}", b"\x00" + data)
    for i, case in enumerate(getattr(requests, "CASES", ())):
        data = case[1] if isinstance(case, tuple) else None
        if isinstance(data, bytes):
            write("netlink", f"request-{i:02d}-{type(case[0]).__name__}", b"\x02" + data)


def isns_seeds() -> None:
    def tlv(tag: int, value: bytes) -> bytes:
        return struct.pack(">II", tag, len(value)) + value

    def name(text: str) -> bytes:
        raw = text.encode() + b"\0"
        return raw + b"\0" * (-len(raw) % 4)

    def pdu(function: int, xid: int, payload: bytes, flags: int = 0x4C00, seq: int = 0) -> bytes:
        return struct.pack(">HHHHHH", 1, function, len(payload), flags, xid, seq) + payload

    mapped = bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1])
    u32 = struct.Struct(">I").pack
    query = u32(0) + tlv(33, u32(1)) + tlv(0, b"")
    for target in ("iqn.2024-01.test.iscsikit:t1", "iqn.2024-01.test.iscsikit:t2"):
        query += tlv(32, name(target)) + tlv(33, u32(1)) + tlv(16, mapped) + tlv(17, u32(3260))
        query += tlv(48, name(target)) + tlv(49, mapped) + tlv(50, u32(3260)) + tlv(51, u32(1))
    # The client's first request has xid = flags >> 4 (0 here); the harness patches it.
    write("isns", "devattrqry-response", b"\x08" + NO_CHUNKS + pdu(0x8002, 0, query))
    half = len(query) // 2 & ~3
    write(
        "isns",
        "devattrqry-response-2-pdus",
        b"\x08"
        + NO_CHUNKS
        + pdu(0x8002, 0, query[:half], 0x4400)
        + pdu(0x8002, 0, query[half:], 0x4800, 1),
    )
    write("isns", "devattrreg-response", b"\x0a" + NO_CHUNKS + pdu(0x8001, 0, u32(0)))
    write("isns", "error-status", b"\x08" + NO_CHUNKS + pdu(0x8002, 0, u32(3)))
    scn = tlv(32, name("iqn.2024-01.test:initiator")) + tlv(4, bytes(4) + u32(1700000000))
    scn += tlv(35, u32(1)) + tlv(32, name("iqn.2024-01.test.iscsikit:t1"))
    write("isns", "scn", b"\x05" + NO_CHUNKS + pdu(0x0006, 7, scn))
    esi = tlv(1, name("entity")) + tlv(16, mapped) + tlv(17, u32(3260))
    write("isns", "esi", b"\x1d" + NO_CHUNKS + pdu(0x000D, 7, esi))


def main() -> None:
    for build in (
        pdu_seeds,
        ffp_seeds,
        login_seeds,
        text_seeds,
        sendtargets_seeds,
        records_seeds,
        iscsid_conf_seeds,
        cli_seeds,
        ipc_seeds,
        nbd_seeds,
        netlink_seeds,
        isns_seeds,
    ):
        build()
    for directory in sorted(CORPUS.iterdir()):
        print(f"{directory.name}: {sum(1 for _ in directory.iterdir())} files")


if __name__ == "__main__":
    main()
