"""``-C flashnode -o update``: SET_FLASHNODE_PARAMS built as iscsiadm builds it
(usr/iscsiadm.c ``iscsi_set_flashnode_params``, usr/flashnode.c
``flashnode_build_config``), and the simulated qla4xxx's sysfs after it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.errors import IscsiErr, IscsiError
from iscsikit.netlink import NetlinkRequestError
from iscsikit.netlink.params import FlashnodeParam as P
from iscsikit.sysfs import SysfsContext
from iscsikit.testing.simhba import HbaServer, SimulatedHba
from iscsikit_drivers.kerneltcp import NetlinkChannel
from iscsikit_drivers.offload.flashcfg import FLASHNODE_KEYS, flashnode_attrs, strtoul
from iscsikit_drivers.offload.host import OffloadHost

S, C = "flashnode.session.", "flashnode.conn[0]."


def _n(value: int, width: int) -> bytes:
    return value.to_bytes(width, sys.byteorder)


def test_attrs_golden() -> None:
    attrs = flashnode_attrs(
        [
            (S + "targetname", "iqn.2001-04.com.example:t1"),
            (C + "port", "0"),
            (C + "ipaddress", "192.0.2.7"),
            (S + "erl", "300"),  # uint8: strtoul then cut to the field
            (S + "def_time2wait", "junk"),  # strtoul: 0
            (S + "isid", "400001370000"),
            (S + "chap_out_idx", "4"),
            (S + "username", "ignored"),  # in the record, never sent
        ],
        "ipv4",
    )
    assert [(a.param, a.value) for a in attrs] == [
        (P.NAME, b"iqn.2001-04.com.example:t1".ljust(255, b"\0")),
        (P.PORT, _n(3260, 2)),
        (P.IPADDR, bytes([192, 0, 2, 7])),
        (P.ERL, bytes([300 & 0xFF])),
        (P.DEF_TIME2WAIT, _n(0, 2)),
        (P.ISID, bytes.fromhex("400001370000")),
        (P.CHAP_OUT_IDX, _n(4, 4)),
    ]
    assert all(a.param_type is None and a.iface_num is None for a in attrs)  # short form


def test_address_family_follows_the_portal_type() -> None:
    (v6,) = flashnode_attrs([(C + "ipaddress", "2001:db8::5")], "ipv6")
    assert v6.value == bytes.fromhex("20010db8000000000000000000000005")
    # A portal_type given in the same update decides, as the record is updated first.
    attrs = flashnode_attrs([(S + "portal_type", "ipv6"), (C + "ipaddress", "::1")], "ipv4")
    assert attrs[0].value == b"ipv6\0" and len(attrs[1].value) == 16


def test_errors_are_iscsiadms() -> None:
    with pytest.raises(IscsiError) as bad_key:
        flashnode_attrs([(S + "erl", "1"), ("flashnode.session.bogus", "1")], "ipv4")
    assert str(bad_key.value) == "Cannot modify flashnode.session.bogus. Invalid param name."
    assert bad_key.value.code == IscsiErr.INVAL
    for params in ([(C + "ipaddress", "not-an-ip")], [(S + "password", "x")], []):
        with pytest.raises(IscsiError) as nothing:
            flashnode_attrs(params, "ipv4")
        assert (str(nothing.value), nothing.value.code) == (
            "Build flashnode config failed.",
            IscsiErr.ERR,
        )


def test_strtoul_as_c() -> None:
    assert [strtoul(s) for s in ("42", " 7x", "-1", "", "x1", "99999999999999999999999")] == [
        42, 7, 2**64 - 1, 0, 0, 2**64 - 1,
    ]  # fmt: skip


def test_every_key_of_iscsiadms_record() -> None:
    assert len(FLASHNODE_KEYS) == 33 + 26  # idbm_recinfo_flashnode: session, conn[0]
    sent = {k.param for k in FLASHNODE_KEYS.values() if k.param is not None}
    assert len(sent) == 53


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HbaServer]:
    with HbaServer(SimulatedHba(tmp_path, "qla4xxx")) as srv:
        yield srv


def _host(server: HbaServer) -> OffloadHost:
    def factory(*, events: bool = False) -> NetlinkChannel:
        return NetlinkChannel(sock=server.socketpair())

    return OffloadHost(server.hba.host_no, server.hba.transport_handle, factory)


def test_simulated_qla4xxx_shows_the_update(server: HbaServer) -> None:
    server.hba.add_flashnode(0, "iqn.2003-01.org.example:old", "192.0.2.9")
    host = _host(server)
    host.update_flashnode(
        0,
        [(S + "targetname", "iqn.2003-01.org.example:new"), (C + "port", "3261"),
         (C + "ipaddress", "192.0.2.10"), (S + "isid", "00023d000001")],
        "ipv4",
    )  # fmt: skip
    (node,) = SysfsContext(server.hba.root).host(server.hba.host_no).flashnodes()  # type: ignore[union-attr]
    assert node.attr("targetname") == "iqn.2003-01.org.example:new"
    assert node.attr("isid") == "00023d000001"
    assert (node.conn().attr("port"), node.conn().attr("ipaddress")) == ("3261", "192.0.2.10")
    with pytest.raises(NetlinkRequestError):  # no such node: the transport class's -ENODEV
        host.update_flashnode(4, [(S + "erl", "1")], "ipv4")


def test_other_drivers_have_no_flashnode_params(tmp_path: Path) -> None:
    with (
        HbaServer(SimulatedHba(tmp_path, "bnx2i")) as server,
        pytest.raises(NetlinkRequestError) as refused,
    ):
        _host(server).update_flashnode(0, [(S + "erl", "1")], "ipv4")
    assert refused.value.errno == 38  # ENOSYS: bnx2i has no set_flashnode_param
