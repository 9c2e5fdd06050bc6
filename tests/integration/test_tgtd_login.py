"""Discovery and login against real tgtd targets on loopback (tgt 1.0.85).

Every test starts its own tgtd (private TGT_IPC_SOCKET, free port) through the
``tgtd_factory`` fixture of :mod:`iscsikit.testing.plugin`, configured with the
recipes of peers.md §5, and drives it through the public API.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import iscsikit
from iscsikit import Chap, IscsiErr, IscsiError
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.iscsikit"
INITIATOR = f"{IQN}:initiator"

TgtdFactory = Callable[..., Tgtd]


def _disc(tgtd: Tgtd, **kw: object) -> set[tuple[str, int, str]]:
    kw.setdefault("initiator_name", INITIATOR)
    return {(t.portal, t.tpgt, t.name) for t in iscsikit.discover(tgtd.portal, **kw)}  # type: ignore[arg-type]


def test_discover_and_login_without_auth(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    tgtd.add_target(f"{IQN}:open", luns=1)
    tgtd.add_target(f"{IQN}:second", luns=1)
    assert _disc(tgtd) == {
        (tgtd.portal, 1, f"{IQN}:open"),
        (tgtd.portal, 1, f"{IQN}:second"),
    }
    with iscsikit.login(tgtd.portal, f"{IQN}:open", initiator_name=INITIATOR) as session:
        assert not session.closed
        assert session.tsih != 0
        assert session.tpgt == 1
        params = session.params
        assert params["HeaderDigest"] == "None" and params["DataDigest"] == "None"
        # tgt clamps MaxBurstLength to 262144 and answers InitialR2T=Yes (OR), peers.md §5.
        assert params["MaxBurstLength"] == "262144"
        assert params["InitialR2T"] == "Yes"
        assert params["ImmediateData"] == "Yes"
        assert params["ErrorRecoveryLevel"] == "0"
        assert session.ping() < 5
    assert session.closed
    session.logout()  # idempotent


def test_one_way_chap(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    tid = tgtd.add_target(f"{IQN}:chap")
    tgtd.add_account("inuser", "inpass123456")
    tgtd.bind_account("inuser", tid=tid)
    with iscsikit.login(
        tgtd.portal, f"{IQN}:chap", chap=Chap("inuser", "inpass123456"), initiator_name=INITIATOR
    ) as session:
        assert session.params["AuthMethod"] == "CHAP"


def test_mutual_chap(tgtd_factory: TgtdFactory) -> None:
    # tgt 1.0.85 implements CHAP_A=5 (MD5) only: it answers CHAP_A=6 with 0x0200 and
    # accepts CHAP_A=7 but then cannot decode a 32-byte CHAP_R ("chap_decode_string
    # buf[20] !sufficient").  SHA1/SHA-256/SHA3-256 are exercised against the fake
    # target in tests/unit/proto/test_login.py.
    tgtd = tgtd_factory()
    tid = tgtd.add_target(f"{IQN}:mutual")
    tgtd.add_account("inuser", "inpass123456")
    tgtd.bind_account("inuser", tid=tid)
    tgtd.add_account("outuser", "outpass12345")
    tgtd.bind_account("outuser", tid=tid, outgoing=True)
    chap = Chap("inuser", "inpass123456", "outuser", "outpass12345", algorithms="MD5")
    with iscsikit.login(tgtd.portal, f"{IQN}:mutual", chap=chap, initiator_name=INITIATOR) as s:
        assert s.params["AuthMethod"] == "CHAP"


def test_wrong_secret_is_auth_failure_24(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    tid = tgtd.add_target(f"{IQN}:chap")
    tgtd.add_account("inuser", "inpass123456")
    tgtd.bind_account("inuser", tid=tid)
    with pytest.raises(IscsiError) as info:
        iscsikit.login(
            tgtd.portal,
            f"{IQN}:chap",
            chap=Chap("inuser", "wrong-secret"),
            initiator_name=INITIATOR,
        )
    assert info.value.code is IscsiErr.LOGIN_AUTH_FAILED
    # No credentials at all against a CHAP target: also an authentication failure.
    with pytest.raises(IscsiError) as info:
        iscsikit.login(tgtd.portal, f"{IQN}:chap", initiator_name=INITIATOR)
    assert info.value.code is IscsiErr.LOGIN_AUTH_FAILED


def test_mutual_chap_wrong_target_secret_is_24(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    tid = tgtd.add_target(f"{IQN}:mutual")
    tgtd.add_account("inuser", "inpass123456")
    tgtd.bind_account("inuser", tid=tid)
    tgtd.add_account("outuser", "outpass12345")
    tgtd.bind_account("outuser", tid=tid, outgoing=True)
    for chap in (
        Chap("inuser", "inpass123456", "outuser", "not-the-target-secret"),
        Chap("inuser", "inpass123456", "someone-else", "outpass12345"),
    ):
        with pytest.raises(IscsiError) as info:
            iscsikit.login(tgtd.portal, f"{IQN}:mutual", chap=chap, initiator_name=INITIATOR)
        assert info.value.code is IscsiErr.LOGIN_AUTH_FAILED


def test_discovery_chap(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    tgtd.add_target(f"{IQN}:hidden-behind-chap")
    tgtd.add_account("discuser", "discpass1234")
    tgtd.bind_account("discuser")  # no tid: discovery authentication
    with pytest.raises(IscsiError) as info:
        _disc(tgtd)
    assert info.value.code is IscsiErr.LOGIN_AUTH_FAILED
    with pytest.raises(IscsiError) as info:
        _disc(tgtd, chap=Chap("discuser", "wrong-password"))
    assert info.value.code is IscsiErr.LOGIN_AUTH_FAILED
    assert _disc(tgtd, chap=Chap("discuser", "discpass1234")) == {
        (tgtd.portal, 1, f"{IQN}:hidden-behind-chap")
    }


def test_acl_by_initiator_name(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    tgtd.add_target(f"{IQN}:public")
    tid = tgtd.add_target(f"{IQN}:private", acl=())
    tgtd.bind_initiator_name(tid, f"{IQN}:allowed")
    allowed = _disc(tgtd, initiator_name=f"{IQN}:allowed")
    stranger = _disc(tgtd, initiator_name=f"{IQN}:stranger")
    assert (tgtd.portal, 1, f"{IQN}:private") in allowed
    assert stranger == {(tgtd.portal, 1, f"{IQN}:public")}  # hidden from its discovery
    with iscsikit.login(tgtd.portal, f"{IQN}:private", initiator_name=f"{IQN}:allowed"):
        pass
    with pytest.raises(IscsiError) as info:
        iscsikit.login(tgtd.portal, f"{IQN}:private", initiator_name=f"{IQN}:stranger")
    assert info.value.code is IscsiErr.FATAL_LOGIN
    assert "target not found" in str(info.value)


def test_unknown_target_is_fatal_login_19(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    tgtd.add_target(f"{IQN}:exists")
    with pytest.raises(IscsiError) as info:
        iscsikit.login(tgtd.portal, f"{IQN}:does-not-exist", initiator_name=INITIATOR)
    assert info.value.code is IscsiErr.FATAL_LOGIN


def test_redirect_to_second_tgtd(tgtd_factory: TgtdFactory) -> None:
    # tgt skips a redirect to the initiator's own address, so the second one is on
    # 127.0.0.2 (peers.md §5).
    first = tgtd_factory()
    second = tgtd_factory(host="127.0.0.2")
    name = f"{IQN}:moved"
    tid = first.add_target(name)
    second.add_target(name)
    first.redirect(tid, "127.0.0.2", second.port, reason="Temporary")
    with iscsikit.login(first.portal, name, initiator_name=INITIATOR) as session:
        assert session.portal == second.portal


def test_small_max_recv_data_segment_length_forces_extra_rounds(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    tid = tgtd.add_target(f"{IQN}:small")
    tgtd.set_target_param(tid, "MaxRecvDataSegmentLength", "4096")
    tgtd.set_target_param(tid, "MaxXmitDataSegmentLength", "4096")
    tgtd.set_target_param(tid, "FirstBurstLength", "8192")
    tgtd.set_target_param(tid, "MaxBurstLength", "16384")
    with iscsikit.login(
        tgtd.portal, f"{IQN}:small", initiator_name=INITIATOR, MaxRecvDataSegmentLength=4096
    ) as session:
        assert session.params["MaxRecvDataSegmentLength"] == "4096"
        assert session.params["MaxXmitDataSegmentLength"] == "4096"
        assert session.params["FirstBurstLength"] == "8192"
        assert session.params["MaxBurstLength"] == "16384"
        session.ping()


def test_header_and_data_digests(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    tid = tgtd.add_target(f"{IQN}:digest")
    tgtd.set_target_param(tid, "HeaderDigest", "CRC32C")
    tgtd.set_target_param(tid, "DataDigest", "CRC32C")
    with iscsikit.login(
        tgtd.portal,
        f"{IQN}:digest",
        header_digest="CRC32C",
        data_digest="CRC32C",
        initiator_name=INITIATOR,
    ) as session:
        assert session.params["HeaderDigest"] == "CRC32C"
        assert session.params["DataDigest"] == "CRC32C"
        # PDUs now carry digests both ways; a ping with data exercises both.
        session.ping()
    # Discovery with a header digest too.
    assert (tgtd.portal, 1, f"{IQN}:digest") in _disc(tgtd, header_digest="CRC32C,None")


def test_300_targets_in_one_sendtargets_answer(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    names = {f"{IQN}:many-targets-with-a-fairly-long-name-{i:04d}" for i in range(300)}
    for name in sorted(names):
        tgtd.add_target(name, luns=0)
    found = iscsikit.discover(tgtd.portal, initiator_name=INITIATOR)
    assert {t.name for t in found} == names
    assert {(t.portal, t.tpgt) for t in found} == {(tgtd.portal, 1)}


def test_ipv6_and_hostname_portals(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory(host="::1")
    tgtd.add_target(f"{IQN}:v6")
    assert tgtd.portal.startswith("[::1]:")
    assert _disc(tgtd) == {(tgtd.portal, 1, f"{IQN}:v6")}
    with iscsikit.login(tgtd.portal, f"{IQN}:v6", initiator_name=INITIATOR) as session:
        assert session.portal == tgtd.portal
    v4 = tgtd_factory()
    v4.add_target(f"{IQN}:by-name")
    with iscsikit.login(f"localhost:{v4.port}", f"{IQN}:by-name", initiator_name=INITIATOR):
        pass


def test_connection_refused_is_4_and_nothing_listening() -> None:
    from iscsikit.testing.tgtd import free_port

    with pytest.raises(IscsiError) as info:
        iscsikit.discover(f"127.0.0.1:{free_port()}", initiator_name=INITIATOR, timeout=5)
    assert info.value.code is IscsiErr.TRANS


def test_sendtargets_for_one_target_name(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    for name in ("one", "two", "three"):
        tgtd.add_target(f"{IQN}:{name}")
    assert _disc(tgtd, query=f"{IQN}:two") == {(tgtd.portal, 1, f"{IQN}:two")}
    assert _disc(tgtd, query=f"{IQN}:absent") == set()
