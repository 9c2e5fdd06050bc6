"""What a Full Feature Phase connection is configured with: negotiated values, timers.

:class:`ConnectionParams` is the part of login's outcome the data path obeys;
:class:`Timers` the keepalive and error-handling timeouts (open-iscsi's defaults).
Both are frozen values, read by :class:`~iscsikit.proto.ffp.FullFeatureConnection`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


def _yes(value: str | None) -> bool:
    return (value or "").lower() == "yes"


@dataclass(frozen=True, slots=True)
class ConnectionParams:
    """What login negotiated that the data path obeys (RFC 7143 §13)."""

    header_digest: bool = False
    data_digest: bool = False
    #: Largest data segment we accept (what we declared).
    max_recv_data_segment_length: int = 8192
    #: Largest data segment we may send (what the target declared).
    max_xmit_data_segment_length: int = 8192
    first_burst_length: int = 65536
    max_burst_length: int = 262144
    initial_r2t: bool = True
    immediate_data: bool = True

    @classmethod
    def from_negotiated(cls, params: Mapping[str, str]) -> ConnectionParams:
        """From ``LoginAccepted.params`` (the negotiator's view of the session)."""
        return cls(
            header_digest=params.get("HeaderDigest") == "CRC32C",
            data_digest=params.get("DataDigest") == "CRC32C",
            max_recv_data_segment_length=int(params.get("MaxRecvDataSegmentLength", "8192")),
            max_xmit_data_segment_length=int(params.get("MaxXmitDataSegmentLength", "8192")),
            first_burst_length=int(params.get("FirstBurstLength", "65536")),
            max_burst_length=int(params.get("MaxBurstLength", "262144")),
            initial_r2t=_yes(params.get("InitialR2T", "Yes")),
            immediate_data=_yes(params.get("ImmediateData", "Yes")),
        )


@dataclass(frozen=True, slots=True)
class Timers:
    """Keepalive and error-handling timeouts in seconds; 0 disables one.

    The defaults are open-iscsi's: ``node.conn[0].timeo.noop_out_interval`` /
    ``noop_out_timeout``, ``node.session.err_timeo.abort_timeout`` /
    ``lu_reset_timeout`` / ``tgt_reset_timeout``, and the SCSI command timeout the
    kernel's sd driver uses (30 s).
    """

    noop_out_interval: float = 5.0
    noop_out_timeout: float = 5.0
    command_timeout: float = 30.0
    abort_timeout: float = 15.0
    lu_reset_timeout: float = 30.0
    tgt_reset_timeout: float = 30.0
    logout_timeout: float = 15.0
    #: How often :meth:`FullFeatureConnection.handle_timer` wants to run.
    tick: float = 1.0


__all__ = ["ConnectionParams", "Timers"]
