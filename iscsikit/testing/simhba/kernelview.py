"""The sysfs entries the iSCSI transport class makes for a simulated offload session.

What drivers/scsi/scsi_transport_iscsi.c does for a session on an offload host, so that
``iscsikit-adm -m session`` (and ``iscsiadm``, and an adopting daemon) find it where
they look:

* CREATE_BOUND_SESSION: ``session<sid>`` under the HBA's own SCSI host (offload
  sessions share it; iscsi_tcp makes a host per session), ``class/iscsi_session``,
  state ``FREE``, strings not yet set read ``(null)``, ``creator`` the requester's pid;
* CREATE_CONN: ``connection<sid>:<cid>`` (``class/iscsi_connection``), state ``down``;
  BIND_CONN: ``bound``, ``address``/``port`` from the endpoint (``get_ep_param``);
* SET_PARAM: the session or connection attribute of that ``enum iscsi_param``;
* START_CONN: the connection ``up``, the session ``LOGGED_IN`` and its SCSI target
  ``targetH:0:0`` (the scan of an unblocked session; no LUNs: SCSI is not simulated);
* STOP_CONN: ``failed`` and ``FAILED`` for a recovery, ``down`` otherwise;
* DESTROY_CONN / DESTROY_SESSION remove them.

**Simulated** (docs/offload.md); built with :class:`~iscsikit.sysfs.fake.FakeSysfs`.
"""

from __future__ import annotations

import os

from iscsikit.netlink.constants import StopConnFlag
from iscsikit.netlink.params import IscsiParam as I
from iscsikit.sysfs.fake import FakeSession, FakeSysfs

__all__ = ["SessionView"]

_NULL = "(null)"

#: ``enum iscsi_param`` -> (attribute, on the session (else the connection)).
_PARAM_ATTRS: dict[int, tuple[str, bool]] = {
    I.TARGET_NAME: ("targetname", True),
    I.TPGT: ("tpgt", True),
    I.INITIAL_R2T_EN: ("initial_r2t", True),
    I.MAX_R2T: ("max_outstanding_r2t", True),
    I.IMM_DATA_EN: ("immediate_data", True),
    I.FIRST_BURST: ("first_burst_len", True),
    I.MAX_BURST: ("max_burst_len", True),
    I.PDU_INORDER_EN: ("data_pdu_in_order", True),
    I.DATASEQ_INORDER_EN: ("data_seq_in_order", True),
    I.ERL: ("erl", True),
    I.USERNAME: ("username", True),
    I.USERNAME_IN: ("username_in", True),
    I.PASSWORD: ("password", True),
    I.PASSWORD_IN: ("password_in", True),
    I.FAST_ABORT: ("fast_abort", True),
    I.ABORT_TMO: ("abort_tmo", True),
    I.LU_RESET_TMO: ("lu_reset_tmo", True),
    I.TGT_RESET_TMO: ("tgt_reset_tmo", True),
    I.SESS_RECOVERY_TMO: ("recovery_tmo", True),
    I.IFACE_NAME: ("ifacename", True),
    I.INITIATOR_NAME: ("initiatorname", True),
    I.TARGET_ALIAS: ("targetalias", True),
    I.ISID: ("isid", True),
    I.TSID: ("tsid", True),
    I.DEF_TIME2WAIT: ("def_time2wait", True),
    I.DEF_TIME2RETAIN: ("def_time2retain", True),
    I.MAX_RECV_DLENGTH: ("max_recv_dlength", False),
    I.MAX_XMIT_DLENGTH: ("max_xmit_dlength", False),
    I.HDRDGST_EN: ("header_digest", False),
    I.DATADGST_EN: ("data_digest", False),
    I.IFMARKER_EN: ("ifmarker", False),
    I.OFMARKER_EN: ("ofmarker", False),
    I.EXP_STATSN: ("exp_statsn", False),
    I.PERSISTENT_ADDRESS: ("persistent_address", False),
    I.PERSISTENT_PORT: ("persistent_port", False),
    I.PING_TMO: ("ping_tmo", False),
    I.RECV_TMO: ("recv_tmo", False),
}


class SessionView:
    """The sysfs side of the sessions of simulated host ``host_no`` in ``fake``."""

    def __init__(self, fake: FakeSysfs, host_no: int) -> None:
        self.fake = fake
        self.host_no = host_no
        self._sessions: dict[int, FakeSession] = {}

    def _write(self, sid: int, cid: int | None, key: str, value: str | int) -> None:
        if sid not in self._sessions:
            return
        base = self.fake.sys / "class/iscsi_session" / f"session{sid}"
        if cid is not None:
            base = self.fake.sys / "class/iscsi_connection" / f"connection{sid}:{cid}"
            if not base.exists():
                return
        self.fake.write_attr(base.resolve(), key, value)

    def created(self, sid: int) -> None:
        """CREATE_BOUND_SESSION."""
        session = FakeSession(
            sid=sid, target=_NULL, address=_NULL, port=0, tpgt=0, host_no=self.host_no,
            ifacename=_NULL, initiatorname=_NULL, state="FREE", creator=os.getpid(),
        )  # fmt: skip
        self._sessions[sid] = session
        self.fake.add_session(session, connection=False)

    def conn_created(self, sid: int, cid: int) -> None:
        """CREATE_CONN."""
        session = self._sessions.get(sid)
        if session is not None:
            self.fake.add_connection(session, cid)
            self._write(sid, cid, "state", "down")
            self._write(sid, cid, "persistent_address", _NULL)
            self._write(sid, cid, "persistent_port", 0)

    def bound(self, sid: int, cid: int, address: tuple[str, int]) -> None:
        """BIND_CONN on an endpoint connected to ``address``."""
        self._write(sid, cid, "state", "bound")
        self._write(sid, cid, "address", address[0])
        self._write(sid, cid, "port", address[1])

    def param(self, sid: int, cid: int, param: int, value: str) -> None:
        """SET_PARAM."""
        known = _PARAM_ATTRS.get(param)
        if known is not None:
            name, on_session = known
            self._write(sid, None if on_session else cid, name, value)

    def started(self, sid: int, cid: int) -> None:
        """START_CONN: logged in, unblocked, scanned."""
        self._write(sid, cid, "state", "up")
        self._write(sid, None, "state", "LOGGED_IN")
        if sid in self._sessions:
            self.fake.add_target(sid)

    def stopped(self, sid: int, cid: int, flag: int) -> None:
        """STOP_CONN: a recovery fails the session; otherwise the connection is down."""
        recover = flag == StopConnFlag.RECOVER
        self._write(sid, cid, "state", "failed" if recover else "down")
        if recover:
            self._write(sid, None, "state", "FAILED")

    def conn_destroyed(self, sid: int, cid: int) -> None:
        """DESTROY_CONN."""
        if sid in self._sessions:
            self.fake.remove_connection(sid, cid)

    def destroyed(self, sid: int) -> None:
        """DESTROY_SESSION."""
        if self._sessions.pop(sid, None) is not None:
            self.fake.remove_session(sid)
