"""Fuzz harness: SendTargets answers (RFC 7143 Appendix C).

Input: ``flags, size1, size2, stream``.  The stream is the target's side of a Discovery
session after login: PDUs cut from it by :class:`~iscsikit.proto.framing.PduReader` go
to a :class:`~iscsikit.proto.sendtargets.SendTargetsMachine` (with ``flags & 1`` each
Text Response gets the ITT of the request it answers) until it returns the discovered
targets.  With ``flags & 2`` the stream is also read as one text segment and given to
:func:`~iscsikit.proto.sendtargets.parse_sendtargets` directly (TargetAddress values:
IPv4, [IPv6], host names, ports, tags).  Allowed, as documented:
``RemoteProtocolError``.  Anything else is a finding.
"""

from __future__ import annotations

import dataclasses

import fuzzlib

with fuzzlib.instrument():
    from iscsikit.errors import RemoteProtocolError
    from iscsikit.proto.address import Portal
    from iscsikit.proto.framing import PduReader
    from iscsikit.proto.pdu import TextResponse
    from iscsikit.proto.sendtargets import SendTargetsMachine, parse_sendtargets
    from iscsikit.proto.session import SessionState
    from iscsikit.proto.text import decode_text

_PORTAL = Portal("192.0.2.10", 3260)


def TestOneInput(data: bytes) -> None:
    if len(data) < 3:
        return
    flags, sizes, stream = data[0], data[1:3], data[3:]
    if flags & 2:
        try:
            for target in parse_sendtargets(decode_text(stream), _PORTAL):
                str(target)
        except RemoteProtocolError:
            pass
    state = SessionState(cmdsn=1, expcmdsn=1, maxcmdsn=10, expstatsn=1)
    machine = SendTargetsMachine(state, _PORTAL)
    req = machine.start()
    reader = PduReader(peer="target")
    try:
        for chunk in fuzzlib.split(stream, sizes):
            reader.receive_data(chunk)
            while (pdu := reader.next_pdu()) is not None:
                if flags & 1 and isinstance(pdu, TextResponse):
                    pdu = dataclasses.replace(pdu, itt=req.itt)
                result = machine.receive(pdu)
                if isinstance(result, list):
                    for target in result:
                        str(target)
                    return
                req = result
    except RemoteProtocolError:
        pass


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
