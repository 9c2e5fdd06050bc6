"""Fuzz harness: login responses and their text keys (the login machine, CHAP,
the negotiation table).

Input: ``flags, size1, size2, stream``.  ``flags`` picks CHAP (none, one-way, mutual),
how many rounds the machine first plays with a well-behaved fake target (so every stage
is reached), a Discovery or Normal session, and whether each
received Login Response gets the ITT and ISID of the request it answers (random bytes
almost never match them; captured responses from another login never do).  The stream
is the target's side of the connection: PDUs are cut from it by
:class:`~iscsikit.proto.framing.PduReader` and handed to
:meth:`~iscsikit.proto.login.LoginMachine.receive` until the login ends.
Allowed, as documented: ``LoginError`` (a login status, a failed mutual CHAP) and
``RemoteProtocolError``.  Anything else is a finding.
"""

from __future__ import annotations

import dataclasses

import fuzzlib

with fuzzlib.instrument():
    from iscsikit.errors import LoginError, RemoteProtocolError
    from iscsikit.proto.chap import ChapAlgorithm
    from iscsikit.proto.framing import PduReader
    from iscsikit.proto.login import ChapSecrets, LoginConfig, LoginMachine
    from iscsikit.proto.pdu import LoginRequest, LoginResponse
    from iscsikit.testing.faketarget import FakeTarget, FakeTargetConfig

_ISID = b"\x80\x00\x00\x00\x00\x01"
_OPERATIONAL = {
    "HeaderDigest": "CRC32C,None",
    "DataDigest": "CRC32C,None",
    "MaxBurstLength": "65536",
    "MaxRecvDataSegmentLength": "262144",
}


def _random(n: int) -> bytes:
    return bytes(range(1, n + 1))


def _target_random(n: int) -> bytes:
    """The fake target's challenges: fixed, so that an input always replays the same."""
    return bytes(range(101, 101 + n))


def _setup(flags: int) -> tuple[LoginMachine, FakeTarget]:
    chap, mutual = bool(flags & 1), bool(flags & 2)
    secrets = None
    if chap:
        secrets = ChapSecrets(
            "alice",
            "alice-secret-1",
            *(("tgt", "target-secret-2") if mutual else ()),
            algorithms=(ChapAlgorithm.SHA256, ChapAlgorithm.MD5),
        )
    discovery = bool(flags & 0x80)
    machine = LoginMachine(
        LoginConfig(
            initiator_name="iqn.2024-01.test:i",
            isid=_ISID,
            target_name=None if discovery else "iqn.2024-01.test.fake:disk",
            chap=secrets,
            operational=_OPERATIONAL,
            security_stage=bool(flags & 0x40),
        ),
        random_bytes=_random,
    )
    target = FakeTarget(
        FakeTargetConfig(
            accounts={"alice": "alice-secret-1"} if chap else None,
            outgoing=("tgt", "target-secret-2") if mutual else None,
            extra_rounds=1,
        ),
        random_bytes=_target_random,
    )
    return machine, target


def TestOneInput(data: bytes) -> None:
    if len(data) < 3:
        return
    flags, sizes, stream = data[0], data[1:3], data[3:]
    machine, target = _setup(flags)
    reader = PduReader(peer="target")
    try:
        req: object = machine.start()
        for _ in range(flags >> 2 & 3):
            assert isinstance(req, LoginRequest)
            (rsp,) = target.receive(req)
            req = machine.receive(rsp)
            if not isinstance(req, LoginRequest):
                return
        for chunk in fuzzlib.split(stream, sizes):
            reader.receive_data(chunk)
            while (pdu := reader.next_pdu()) is not None:
                if flags & 0x10 and isinstance(pdu, LoginResponse):
                    pdu = dataclasses.replace(pdu, itt=req.itt, isid=req.isid)  # type: ignore[attr-defined]
                req = machine.receive(pdu)
                if not isinstance(req, LoginRequest):
                    return
    except (LoginError, RemoteProtocolError):
        pass


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
