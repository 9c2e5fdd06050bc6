"""The counters of one Full Feature Phase connection (``iscsiadm -m session -s``).

:class:`ConnectionStats` has one integer per field of the kernel's ``struct
iscsi_stats`` (include/iscsi_if.h), in the order iscsiadm prints them, and means by
each what Linux's libiscsi means:

* ``txdata_octets`` / ``rxdata_octets``: SCSI data bytes moved - immediate data and
  Data-Out payloads sent, Data-In payloads received.  (iscsi_tcp counts every byte on
  the socket instead, headers included; the offload drivers count data, as here.)
* ``*_pdus``: PDUs of that kind sent (``noptx``, ``scsicmd``, ``tmfcmd``, ``login``,
  ``text``, ``dataout``, ``logout``, ``snack``) or received (the rest).  As libiscsi
  does, ``scsirsp_pdus`` counts every status received: SCSI Responses and Data-In PDUs
  that carry status (phase collapse), so it matches ``scsicmd_pdus`` once all commands
  are answered.  ``login_pdus`` is whoever ran the login's to set (the machine starts
  in Full Feature Phase); ``snack_pdus`` stays 0 (ERL 0 sends no SNACK).
* ``digest_err``: header or data digest failures (each fails the connection);
  ``timeout_err``: commands whose ``command_timeout`` expired (sent, then aborted, or
  never sent because the target kept its window closed).

The machine increments the attributes in place (a plain ``+= 1`` on the hot path);
callers read them, or :meth:`ConnectionStats.as_dict`.  Pure: no I/O.
"""

from __future__ import annotations

from typing import Final

#: The counters, in ``struct iscsi_stats`` order (what ``iscsiadm -m session -s`` prints).
STATS_FIELDS: Final = (
    "txdata_octets", "rxdata_octets", "noptx_pdus", "scsicmd_pdus", "tmfcmd_pdus",
    "login_pdus", "text_pdus", "dataout_pdus", "logout_pdus", "snack_pdus", "noprx_pdus",
    "scsirsp_pdus", "tmfrsp_pdus", "textrsp_pdus", "datain_pdus", "logoutrsp_pdus",
    "r2t_pdus", "async_pdus", "rjt_pdus", "digest_err", "timeout_err",
)  # fmt: skip


class ConnectionStats:
    """One connection's counters, all starting at 0 (see the module docstring)."""

    __slots__ = STATS_FIELDS

    txdata_octets: int
    rxdata_octets: int
    noptx_pdus: int
    scsicmd_pdus: int
    tmfcmd_pdus: int
    login_pdus: int
    text_pdus: int
    dataout_pdus: int
    logout_pdus: int
    snack_pdus: int
    noprx_pdus: int
    scsirsp_pdus: int
    tmfrsp_pdus: int
    textrsp_pdus: int
    datain_pdus: int
    logoutrsp_pdus: int
    r2t_pdus: int
    async_pdus: int
    rjt_pdus: int
    digest_err: int
    timeout_err: int

    def __init__(self) -> None:
        for name in STATS_FIELDS:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        """Every counter by name, in ``struct iscsi_stats`` order (a snapshot)."""
        return {name: getattr(self, name) for name in STATS_FIELDS}

    def __repr__(self) -> str:
        nonzero = ", ".join(f"{k}={v}" for k, v in self.as_dict().items() if v)
        return f"ConnectionStats({nonzero})"


__all__ = ["STATS_FIELDS", "ConnectionStats"]
