"""Fuzz harness: the PDU stream -- framing, the codec of every PDU type, digests.

Input: ``flags, size1, size2, stream``.  ``flags`` picks the reader's settings (header /
data digest, who sends, the declared MaxRecvDataSegmentLength) and whether the harness
writes correct CRC32C digests into the stream first (so that mutations reach the
decoders behind the checks).  The stream goes to :class:`~iscsikit.proto.framing.PduReader`
in chunks of 1..256 bytes; every PDU it yields is re-encoded and decoded again with
:func:`~iscsikit.proto.pdu.decode_pdu`.  Allowed: ``RemoteProtocolError`` (incl.
``DigestError``), as documented.  Anything else, or a PDU that does not survive its own
encoding, is a finding.
"""

from __future__ import annotations

import contextlib

import fuzzlib

with fuzzlib.instrument():
    from iscsikit.errors import RemoteProtocolError
    from iscsikit.proto.framing import PduReader
    from iscsikit.proto.pdu import decode_pdu, encode_pdu

_MAX_DSL = (512, 8192, 65536, 0xFFFFFF)


def TestOneInput(data: bytes) -> None:
    if len(data) < 3:
        return
    flags, sizes, stream = data[0], data[1:3], data[3:]
    hd, dd = bool(flags & 1), bool(flags & 2)
    if flags & 8:
        stream = fuzzlib.with_digests(stream, header=hd, data=dd)
    reader = PduReader(
        peer="initiator" if flags & 4 else "target",
        header_digest=hd,
        data_digest=dd,
        max_data_segment_length=_MAX_DSL[flags >> 4 & 3],
    )
    try:
        for chunk in fuzzlib.split(stream, sizes):
            reader.receive_data(chunk)
            _ = reader.bytes_needed
            while (pdu := reader.next_pdu()) is not None:
                wire = encode_pdu(pdu, header_digest=hd, data_digest=dd)
                again = decode_pdu(wire, header_digest=hd, data_digest=dd)
                if again != pdu:
                    raise AssertionError(f"{pdu!r} re-decodes as {again!r}")
    except RemoteProtocolError:
        pass
    if flags & 0x40:
        with contextlib.suppress(RemoteProtocolError):
            decode_pdu(stream, header_digest=hd, data_digest=dd)


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
