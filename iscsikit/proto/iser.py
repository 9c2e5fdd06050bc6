"""iSER's login keys (RFC 7145 §6) as an initiator offers them, and what they decide (pure).

An iSER connection negotiates its data segment sizes per direction instead of
``MaxRecvDataSegmentLength``, and ``RDMAExtensions=Yes`` switches the session to RDMA.
open-iscsi's iscsid (usr/login.c ``add_params_transport_specific``, ``fill_op_params_text``
and usr/iser.c) offers, in a Normal session over iser:

* ``InitiatorRecvDataSegmentLength`` = ``node.conn[0].iscsi.MaxRecvDataSegmentLength``,
* ``TargetRecvDataSegmentLength`` = ``MaxXmitDataSegmentLength`` (0, the default: 8192),
* ``RDMAExtensions=Yes``,

and neither ``MaxRecvDataSegmentLength`` nor the digests (iSER carries no digests,
RFC 7145 §5.1).  It does not send ``iSERHelloRequired`` (its RFC 5046 default, No, is
what it runs with).  A target that answers ``RDMAExtensions=No`` fails the login (iscsid:
"Target must support RDMAExtensions").

The negotiation itself (Minimum of each length, AND of RDMAExtensions) is the
:class:`~iscsikit.proto.negotiation.Negotiator`'s, from the key table.
"""

from __future__ import annotations

from collections.abc import Mapping

from iscsikit.errors import FatalLoginError

__all__ = [
    "DEFAULT_TARGET_RECV",
    "ISER_WITHOUT",
    "iser_data_lengths",
    "iser_operational",
    "require_rdma",
]

#: iscsid's ``max_xmit_dlength`` when ``MaxXmitDataSegmentLength`` is 0 (the default):
#: ISCSI_DEF_MAX_RECV_SEG_LEN.
DEFAULT_TARGET_RECV = 8192
#: iscsid's ``DEF_INI_MAX_RECV_SEG_LEN`` (the record's default MaxRecvDataSegmentLength).
_DEFAULT_INITIATOR_RECV = 262144
#: Offers a TCP connection makes that an iSER one does not.
ISER_WITHOUT = ("HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength")


def iser_operational(
    operational: Mapping[str, str], *, target_recv: int = DEFAULT_TARGET_RECV
) -> dict[str, str]:
    """The operational offers of a Normal iSER login from a TCP login's ``operational``.

    ``MaxRecvDataSegmentLength`` becomes ``InitiatorRecvDataSegmentLength``;
    ``target_recv`` (iscsid's ``max_xmit_dlength``) is offered as
    ``TargetRecvDataSegmentLength``; digests are dropped; ``RDMAExtensions=Yes`` added.
    """
    out = {k: v for k, v in operational.items() if k not in ISER_WITHOUT}
    initiator_recv = operational.get("MaxRecvDataSegmentLength") or str(_DEFAULT_INITIATOR_RECV)
    out["InitiatorRecvDataSegmentLength"] = initiator_recv
    out["TargetRecvDataSegmentLength"] = str(target_recv or DEFAULT_TARGET_RECV)
    out["RDMAExtensions"] = "Yes"
    return out


def require_rdma(params: Mapping[str, str]) -> None:
    """Fail as iscsid does when the target turned ``RDMAExtensions`` down."""
    if params.get("RDMAExtensions") != "Yes":
        raise FatalLoginError("Login negotiation failed, Target must support RDMAExtensions")


def iser_data_lengths(params: Mapping[str, str]) -> tuple[int, int]:
    """``(max_recv, max_xmit)`` of an iSER connection from its negotiated keys: what the
    initiator receives (InitiatorRecvDataSegmentLength) and sends (TargetRecv...)."""
    recv = params.get("InitiatorRecvDataSegmentLength", str(DEFAULT_TARGET_RECV))
    xmit = params.get("TargetRecvDataSegmentLength", str(DEFAULT_TARGET_RECV))
    return int(recv), int(xmit)
