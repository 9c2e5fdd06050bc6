"""The SET_PARAM list for a kernel session, built from a login's outcome (pure).

iscsid (``initiator_common.c``) sets a session's parameters in two steps: the "session
params" right after BIND_CONN (names, portal, timeouts, CHAP, iface), and the values
login negotiated at full feature phase, before START_CONN (open-iscsi-notes.md §1.5,
steps 6 and 9).  Here login has already happened in userspace, so both lists are sent
one after the other, in iscsid's order.  Values are text (integers in decimal); empty
values are never sent, as iscsid never sends them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from iscsikit.netlink import IscsiParam
from iscsikit.plugin import ConnectSpec
from iscsikit.proto.iser import iser_data_lengths
from iscsikit.proto.login import LoginAccepted

__all__ = ["KernelSettings", "negotiated_params", "session_params"]

Param = tuple[IscsiParam, str]


@dataclass(frozen=True, slots=True)
class KernelSettings:
    """What a kernel session needs beyond a :class:`ConnectSpec` (open-iscsi defaults).

    ``recovery_tmo`` is ``node.session.timeo.replacement_timeout`` (the kernel fails
    I/O when a connection stays down that long); ``cmds_max`` and ``queue_depth`` are
    ``node.session.cmds_max`` / ``queue_depth``; ``fast_abort`` is
    ``node.session.iscsi.FastAbort``.
    """

    recovery_tmo: int = 120
    cmds_max: int = 128
    queue_depth: int = 32
    fast_abort: bool = True
    iface_name: str = "default"


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _yes(params: Mapping[str, str], key: str, default: str) -> str:
    return _flag(params.get(key, default).lower() == "yes")


def _secs(value: float) -> str:
    return str(int(value))


def session_params(spec: ConnectSpec, settings: KernelSettings) -> list[Param]:
    """iscsid's "session params" (step 6): names, portal, timeouts, CHAP, iface."""
    login = spec.login
    timers = spec.timers
    out: list[Param] = [
        (IscsiParam.TARGET_NAME, login.target_name or ""),
        (IscsiParam.PERSISTENT_ADDRESS, spec.portal.host),
        (IscsiParam.PERSISTENT_PORT, str(spec.portal.port)),
        (IscsiParam.SESS_RECOVERY_TMO, str(settings.recovery_tmo)),
    ]
    chap = login.chap
    if chap is not None:
        out += [
            (IscsiParam.USERNAME, chap.username),
            (IscsiParam.PASSWORD, _text(chap.password)),
            (IscsiParam.USERNAME_IN, chap.username_in or ""),
            (IscsiParam.PASSWORD_IN, _text(chap.password_in or "")),
        ]
    out += [
        (IscsiParam.FAST_ABORT, _flag(settings.fast_abort)),
        (IscsiParam.ABORT_TMO, _secs(timers.abort_timeout)),
        (IscsiParam.LU_RESET_TMO, _secs(timers.lu_reset_timeout)),
        (IscsiParam.TGT_RESET_TMO, _secs(timers.tgt_reset_timeout)),
        # noop_out_timeout / noop_out_interval: the kernel sends the NOP-Outs.
        (IscsiParam.PING_TMO, _secs(timers.noop_out_timeout)),
        (IscsiParam.RECV_TMO, _secs(timers.noop_out_interval)),
        (IscsiParam.IFACE_NAME, settings.iface_name),
        (IscsiParam.INITIATOR_NAME, login.initiator_name),
        (IscsiParam.ISID, login.isid.hex()),
    ]
    return [(p, v) for p, v in out if v != ""]


def negotiated_params(accepted: LoginAccepted) -> list[Param]:
    """What login negotiated (step 9), then EXP_STATSN and TPGT, as iscsid sends them.

    ERL and the markers are sent as 0 as iscsid does (it only negotiates those values).
    For iSER (``RDMAExtensions=Yes``) the data segment lengths are
    Initiator/TargetRecvDataSegmentLength, as iscsid's ``max_recv/xmit_dlength`` are.
    """
    p = accepted.params
    recv, xmit = (
        p.get("MaxRecvDataSegmentLength", "8192"),
        p.get("MaxXmitDataSegmentLength", "8192"),
    )
    if p.get("RDMAExtensions") == "Yes":  # iSER: the per-direction lengths (RFC 7145 §6)
        recv, xmit = (str(n) for n in iser_data_lengths(p))
    out: list[Param] = [
        (IscsiParam.MAX_RECV_DLENGTH, recv),
        (IscsiParam.MAX_XMIT_DLENGTH, xmit),
        (IscsiParam.HDRDGST_EN, _flag(p.get("HeaderDigest") == "CRC32C")),
        (IscsiParam.DATADGST_EN, _flag(p.get("DataDigest") == "CRC32C")),
        (IscsiParam.INITIAL_R2T_EN, _yes(p, "InitialR2T", "Yes")),
        (IscsiParam.MAX_R2T, p.get("MaxOutstandingR2T", "1")),
        (IscsiParam.IMM_DATA_EN, _yes(p, "ImmediateData", "Yes")),
        (IscsiParam.FIRST_BURST, p.get("FirstBurstLength", "65536")),
        (IscsiParam.MAX_BURST, p.get("MaxBurstLength", "262144")),
        (IscsiParam.PDU_INORDER_EN, _yes(p, "DataPDUInOrder", "Yes")),
        (IscsiParam.DATASEQ_INORDER_EN, _yes(p, "DataSequenceInOrder", "Yes")),
        (IscsiParam.ERL, "0"),
        (IscsiParam.IFMARKER_EN, "0"),
        (IscsiParam.OFMARKER_EN, "0"),
        (IscsiParam.DEF_TIME2WAIT, p.get("DefaultTime2Wait", "2")),
        (IscsiParam.DEF_TIME2RETAIN, p.get("DefaultTime2Retain", "20")),
        (IscsiParam.EXP_STATSN, str((accepted.statsn + 1) & 0xFFFFFFFF)),
    ]
    if accepted.target_portal_group_tag is not None:
        out.append((IscsiParam.TPGT, str(accepted.target_portal_group_tag)))
    return out


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
