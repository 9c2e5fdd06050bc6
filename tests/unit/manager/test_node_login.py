"""A node record's login arguments (iscsikit.manager.node_login)."""

from __future__ import annotations

import pytest

from iscsikit.errors import InvalidParameterError
from iscsikit.manager.node_login import login_arguments, timers_of
from iscsikit.records.model import NodeRecord

IQN = "iqn.2024-01.test:node"


def test_defaults_are_iscsids() -> None:
    node = NodeRecord.new(IQN, "127.0.0.1", 3261, 1)
    portal, target, args = login_arguments(node)
    assert (portal, target) == ("127.0.0.1:3261", IQN)
    assert args["chap"] is None
    assert args["header_digest"] == "None" and args["data_digest"] == "None"
    assert args["queue_depth"] == 128
    assert args["InitialR2T"] == "No" and args["ImmediateData"] == "Yes"
    assert args["FirstBurstLength"] == "262144"
    assert args["MaxRecvDataSegmentLength"] == "262144"
    timers = args["timers"]
    assert (timers.noop_out_interval, timers.noop_out_timeout) == (5, 5)
    assert (timers.abort_timeout, timers.lu_reset_timeout, timers.tgt_reset_timeout) == (15, 30, 30)
    assert "initiator_name" not in args


def test_chap_digests_and_timers_from_the_record() -> None:
    node = NodeRecord.new(IQN, "::1", 3260, 1)
    for key, value in {
        "node.session.auth.authmethod": "CHAP",
        "node.session.auth.username": "u",
        "node.session.auth.password": "p" * 12,
        "node.session.auth.username_in": "t",
        "node.session.auth.password_in": "q" * 12,
        "node.session.auth.chap_algs": "SHA256,MD5",
        "node.conn[0].iscsi.HeaderDigest": "CRC32C",
        "node.conn[0].iscsi.DataDigest": "CRC32C,None",
        "node.session.cmds_max": "32",
        "node.conn[0].timeo.noop_out_interval": "0",
        "node.conn[0].timeo.noop_out_timeout": "0",
        "node.session.err_timeo.abort_timeout": "3",
    }.items():
        node.set(key, value)
    portal, _, args = login_arguments(node)
    assert portal == "[::1]:3260"
    chap = args["chap"]
    assert (chap.username, chap.username_in, chap.algorithms) == ("u", "t", "SHA256,MD5")
    assert args["header_digest"] == "CRC32C" and args["data_digest"] == "CRC32C,None"
    assert args["queue_depth"] == 32
    assert args["timers"].noop_out_interval == 0
    assert args["timers"].abort_timeout == 3


def test_interval_without_timeout_gets_the_default_timeout() -> None:
    node = NodeRecord.new(IQN, "127.0.0.1")
    node.set("node.conn[0].timeo.noop_out_interval", "10")
    node.set("node.conn[0].timeo.noop_out_timeout", "0")
    assert timers_of(node).noop_out_timeout == 5


def test_garbage_number_is_an_invalid_parameter() -> None:
    node = NodeRecord.new(IQN, "127.0.0.1")
    node.values["node.session.cmds_max"] = "lots"
    with pytest.raises(InvalidParameterError, match="cmds_max"):
        login_arguments(node)


@pytest.mark.parametrize(
    ("values", "chap"),
    [
        # iscsid: a password means CHAP, whatever authmethod says (the firmware's records
        # and iscsiadm's -m fw -l carry CHAP credentials with authmethod None).
        ({"username": "u", "password": "p"}, ("u", "p", None, None)),
        ({"authmethod": "CHAP", "username": "u", "password": "p"}, ("u", "p", None, None)),
        (
            {"username": "u", "password": "p", "username_in": "t", "password_in": "q"},
            ("u", "p", "t", "q"),
        ),
        # No outgoing password: no CHAP at all (iscsi_setup_authentication gives up).
        ({"authmethod": "CHAP", "username": "u"}, None),
        ({"username_in": "t", "password_in": "q"}, None),
    ],
)
def test_a_password_means_chap(values: dict[str, str], chap: tuple[str, ...] | None) -> None:
    node = NodeRecord.new(IQN, "127.0.0.1", 3261, 1)
    for key, value in values.items():
        node.set(f"node.session.auth.{key}", value)
    got = login_arguments(node)[2]["chap"]
    if chap is None:
        assert got is None
    else:
        assert (got.username, got.password, got.username_in, got.password_in) == chap
