"""Fuzz harness: text keys (RFC 7143 §6) -- the key=value parser, the assembler of
C-bit segments, and the negotiation table receiving what the peer sent.

Input: ``flags, size1, size2, text``.  The text is cut into segments (1..256 bytes) fed
to :class:`~iscsikit.proto.text.TextAssembler` with the C bit on all but the last; the
decoded pairs go to a :class:`~iscsikit.proto.negotiation.Negotiator` that first offered
its own keys.  ``flags`` picks the role (initiator / target), session type, stage and
whether the pairs are also received a second time (the next round of one exchange).
Allowed, as documented: ``RemoteProtocolError``.  Anything else is a finding.
"""

from __future__ import annotations

import contextlib

import fuzzlib

with fuzzlib.instrument():
    from iscsikit.errors import RemoteProtocolError
    from iscsikit.proto.negotiation import Negotiator
    from iscsikit.proto.text import TextAssembler, decode_text

_LOCAL = {
    "HeaderDigest": "CRC32C,None",
    "DataDigest": "None,CRC32C",
    "MaxConnections": "1",
    "InitialR2T": "No",
    "ImmediateData": "Yes",
    "MaxRecvDataSegmentLength": "262144",
    "MaxBurstLength": "16776192",
    "FirstBurstLength": "262144",
    "DefaultTime2Wait": "2",
    "DefaultTime2Retain": "0",
    "MaxOutstandingR2T": "1",
    "ErrorRecoveryLevel": "0",
    "X-com.example.fuzz": "1",
}
_STAGES = (0, 1, 1, 3)


def TestOneInput(data: bytes) -> None:
    if len(data) < 3:
        return
    flags, sizes, text = data[0], data[1:3], data[3:]
    with contextlib.suppress(RemoteProtocolError):
        decode_text(text)
    assembler = TextAssembler(max_bytes=64 * 1024)
    chunks = list(fuzzlib.split(text, sizes)) or [b""]
    pairs = None
    try:
        for i, chunk in enumerate(chunks):
            pairs = assembler.feed(chunk, cont=i < len(chunks) - 1)
    except RemoteProtocolError:
        return
    assert pairs is not None
    role = "target" if flags & 1 else "initiator"
    stage = _STAGES[flags >> 1 & 3]
    negotiator = Negotiator(
        role, _LOCAL, session_type="Discovery" if flags & 8 else "Normal", leading=True
    )
    try:
        if flags & 0x10:
            negotiator.offer(stage)
        negotiator.receive(pairs, stage)
        if flags & 0x20:
            negotiator.receive(pairs, stage)
        negotiator.offer(stage)
        _ = negotiator.complete, negotiator.peer_declarations
    except RemoteProtocolError:
        pass


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
