"""The strongest golden: the C compiler's own offsets, sizes and enum values.

A tiny C program including the real ``iscsi_if.h`` prints ``offsetof``/``sizeof`` of
every union member the codec declares (``FIELDS``, ``DERIVED``, ``U_FIELDS``,
``R_FIELDS``), the sizes of the payload structs, and the value of every enum member in
:mod:`iscsikit.netlink.constants` and :mod:`iscsikit.netlink.params`; the test compares
them with the codec.

Manual check (documented in docs/netlink.md): no small Debian package ships
``iscsi_if.h`` (it is in the kernel source and the linux-headers packages, tens of MB,
and in open-iscsi's source tree), so CI does not run it.  Point
``ISCSIKIT_ISCSI_IF_DIR`` at a directory holding ``iscsi_if.h`` and its
``iscsi_proto.h`` (open-iscsi's ``include/``) and have ``gcc``, then run
``python3 -m pytest tests/manual/netlink_c_layout.py``.  It lives outside the collected
tests because no small Debian package ships the header (CI runs what it can install, and
skips nothing).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from enum import IntEnum
from pathlib import Path

import pytest

from iscsikit.netlink import constants as c
from iscsikit.netlink import events as e
from iscsikit.netlink import messages as m
from iscsikit.netlink import params as p
from iscsikit.netlink.constants import CUSTOM_STAT_SIZE, UEVENT_SIZE
from iscsikit.netlink.wire import ChapRecord, IscsiPath

HEADER_DIR = os.environ.get("ISCSIKIT_ISCSI_IF_DIR", "")


#: The C union member of each request (``u``) and reply/event (``r``) class.
U_MEMBER: dict[type[m.Request], str] = {
    m.CreateSession: "c_session",
    m.CreateBoundSession: "c_bound_session",
    m.DestroySession: "d_session",
    m.DestroySessionAsync: "d_session",
    m.UnbindSession: "d_session",
    m.CreateConn: "c_conn",
    m.DestroyConn: "d_conn",
    m.StartConn: "start_conn",
    m.GetStats: "get_stats",
    m.BindConn: "b_conn",
    m.StopConn: "stop_conn",
    m.SendPdu: "send_pdu",
    m.SetParam: "set_param",
    m.SetHostParam: "set_host_param",
    m.EpConnect: "ep_connect",
    m.EpConnectThroughHost: "ep_connect_through_host",
    m.EpPoll: "ep_poll",
    m.EpDisconnect: "ep_disconnect",
    m.TgtDscvr: "tgt_dscvr",
    m.Ping: "iscsi_ping",
    m.PathUpdate: "set_path",
    m.SetIfaceParams: "set_iface_params",
    m.SetChap: "set_path",
    m.SetFlashnodeParams: "set_flashnode",
    m.GetChap: "get_chap",
    m.DeleteChap: "delete_chap",
    m.NewFlashnode: "new_flashnode",
    m.DelFlashnode: "del_flashnode",
    m.LoginFlashnode: "login_flashnode",
    m.LogoutFlashnode: "logout_flashnode",
    m.LogoutFlashnodeSid: "logout_flashnode_sid",
    m.GetHostStats: "get_host_stats",
}
R_MEMBER: dict[type[e.KernelMessage], str] = {
    e.SessionCreated: "r.c_session_ret",
    e.ConnCreated: "r.c_conn_ret",
    e.EndpointConnected: "r.ep_connect_ret",
    e.FlashnodeCreated: "r.new_flashnode_ret",
    e.RequestDone: "r",
    e.PduReceived: "r.recv_req",
    e.ConnFailed: "r.connerror",
    e.ConnLoginStateChanged: "r.conn_login",
    e.SessionDestroyed: "r.d_session",
    e.SessionUnbound: "r.unbind_session",
    e.SessionAppeared: "r.c_session_ret",
    e.PathRequested: "r.req_path",
    e.InterfaceDown: "r.notify_if_down",
    e.HostEventReceived: "r.host_event",
    e.PingCompleted: "r.ping_comp",
    e.StatsReceived: "u.get_stats",
    e.HostStatsReceived: "u.get_host_stats",
    e.ChapReceived: "u.get_chap",
}
#: Codec field names that differ from the C member names.
C_NAME = {"discovery_type": "type"}

#: Each enum and the prefix its members carry in C.
ENUMS: list[tuple[type[IntEnum], str]] = [
    (c.UEvent, "ISCSI_UEVENT_"),
    (c.ConnError, "ISCSI_ERR_"),
    (c.ConnState, "ISCSI_CONN_STATE_"),
    (c.StopConnFlag, "STOP_CONN_"),
    (c.TgtDscvrType, "ISCSI_TGT_DSCVR_"),
    (c.HostEventCode, "ISCSI_EVENT_"),
    (c.ParamType, "ISCSI_"),
    (c.IfaceType, "ISCSI_IFACE_TYPE_"),
    (c.ChapType, "CHAP_TYPE_"),
    (c.PingStatus, "ISCSI_PING_"),
    (c.PortState, "ISCSI_PORT_STATE_"),
    (p.IscsiParam, "ISCSI_PARAM_"),
    (p.HostParam, "ISCSI_HOST_PARAM_"),
    (p.NetParam, "ISCSI_NET_PARAM_"),
    (p.IfaceParam, "ISCSI_IFACE_PARAM_"),
    (p.FlashnodeParam, "ISCSI_FLASHNODE_"),
    (p.ChapParam, "ISCSI_CHAP_PARAM_"),
]


def c_enum_name(prefix: str, member: IntEnum) -> str:
    if member.name.startswith("KEVENT_"):
        return "ISCSI_" + member.name
    if prefix == "ISCSI_ERR_" and member.name == "OK":
        return "ISCSI_OK"
    return prefix + member.name


def expectations() -> dict[str, int]:
    """What the C program must print, as ``name -> number``."""
    want: dict[str, int] = {
        "sizeof(struct iscsi_uevent)": UEVENT_SIZE,
        "sizeof(struct iscsi_path)": IscsiPath.SIZE,
        "sizeof(struct iscsi_chap_rec)": ChapRecord.SIZE,
        "sizeof(struct iscsi_stats)": 96,
        "sizeof(struct iscsi_stats_custom)": CUSTOM_STAT_SIZE,
        "sizeof(struct iscsi_offload_host_stats)": 664,
        "sizeof(struct iscsi_iface_param_info)": 12,
        "sizeof(struct iscsi_param_info)": 6,
        "offsetof(struct iscsi_uevent, transport_handle)": 8,
        "offsetof(struct iscsi_uevent, u)": 16,
        "offsetof(struct iscsi_uevent, r)": 40,
    }
    for cls, member in U_MEMBER.items():
        for f in cls.FIELDS + cls.DERIVED:
            path = f"u.{member}.{C_NAME.get(f.name, f.name)}"
            want[f"offsetof(struct iscsi_uevent, {path})"] = f.offset
            want[f"sizeof(((struct iscsi_uevent *)0)->{path})"] = struct.calcsize(f.code)
    for rcls, rmember in R_MEMBER.items():
        for f in rcls.U_FIELDS + rcls.R_FIELDS:
            path = f"{rmember}.{f.name}"
            want[f"offsetof(struct iscsi_uevent, {path})"] = f.offset
            want[f"sizeof(((struct iscsi_uevent *)0)->{path})"] = struct.calcsize(f.code)
    for enum, prefix in ENUMS:
        for item in enum:
            want[c_enum_name(prefix, item)] = int(item)
    want["ISCSI_NL_GRP_ISCSID"] = c.ISCSI_NL_GRP_ISCSID
    want["ISCSI_NL_GRP_UIP"] = c.ISCSI_NL_GRP_UIP
    want["ISCSI_STATS_CUSTOM_MAX"] = c.STATS_CUSTOM_MAX
    for flag in c.Capability:
        want[f"CAP_{flag.name}"] = int(flag)
    return want


def test_codec_matches_the_c_header(tmp_path: Path) -> None:
    if not HEADER_DIR or not shutil.which("gcc"):
        pytest.fail("set ISCSIKIT_ISCSI_IF_DIR to a directory holding iscsi_if.h, and have gcc")
    want = expectations()
    lines = [
        "#include <stddef.h>",
        "#include <stdio.h>",
        "#include <stdint.h>",
        '#include "iscsi_if.h"',
        "int main(void) {",
    ]
    for expr in want:
        lines.append(f'    printf("%s\\t%lld\\n", "{expr}", (long long)({expr}));')
    lines += ["    return 0;", "}"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "layout"
    subprocess.run(
        ["gcc", "-std=gnu11", "-I", HEADER_DIR, "-o", str(exe), str(src)],
        check=True,
        capture_output=True,
        text=True,
    )
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    got = {name: int(value) for name, value in (line.split("\t") for line in out.splitlines())}
    mismatches = {k: (want[k], got[k]) for k in want if got[k] != want[k]}
    assert mismatches == {}, "codec vs C (codec, C): " + repr(mismatches)
