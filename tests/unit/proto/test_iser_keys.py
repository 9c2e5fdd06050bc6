"""iscsikit.proto.iser: the iSER login offers iscsid makes, negotiated against targets that
do and do not speak iSER (Negotiator on both sides, no I/O)."""

from __future__ import annotations

import pytest

from iscsikit.errors import FatalLoginError
from iscsikit.manager.spec import normal_operational_keys
from iscsikit.proto.constants import Stage
from iscsikit.proto.iser import iser_data_lengths, iser_operational, require_rdma
from iscsikit.proto.negotiation import Negotiator

OP = Stage.OPERATIONAL


def _negotiate(initiator: Negotiator, target: Negotiator) -> list[tuple[str, str]]:
    """Offer, answer, repeat; returns the initiator's first offer."""
    first = message = initiator.offer(OP)
    sides, turn = (initiator, target), 1
    for _ in range(8):
        receiver = sides[turn]
        reply = receiver.receive(message, OP) + receiver.offer(OP)
        if not message and not reply:
            break
        message, turn = reply, 1 - turn
    return first


def test_offers_are_iscsids_for_iser() -> None:
    tcp = normal_operational_keys("CRC32C,None", "CRC32C", MaxRecvDataSegmentLength="131072")
    offers = iser_operational(tcp)
    assert "MaxRecvDataSegmentLength" not in offers
    assert "HeaderDigest" not in offers and "DataDigest" not in offers
    assert offers["InitiatorRecvDataSegmentLength"] == "131072"
    assert offers["TargetRecvDataSegmentLength"] == "8192"  # MaxXmit 0: iscsid's 8192
    assert offers["RDMAExtensions"] == "Yes"
    assert offers["FirstBurstLength"] == tcp["FirstBurstLength"]  # the rest as for TCP
    assert iser_operational({}, target_recv=65536)["TargetRecvDataSegmentLength"] == "65536"
    assert iser_operational({})["InitiatorRecvDataSegmentLength"] == "262144"


def test_wire_order_follows_iscsid() -> None:
    sent = [k for k, _ in Negotiator("initiator", iser_operational({})).offer(OP)]
    iser_keys = ["InitiatorRecvDataSegmentLength", "TargetRecvDataSegmentLength", "RDMAExtensions"]
    assert [k for k in sent if k in iser_keys] == iser_keys  # add_params_transport_specific


def test_lengths_are_the_minimum_each_way_against_an_iser_target() -> None:
    initiator = Negotiator("initiator", iser_operational(normal_operational_keys()))
    # LIO's defaults for an iSER portal.
    target = Negotiator(
        "target",
        {
            "RDMAExtensions": "Yes",
            "InitiatorRecvDataSegmentLength": "262144",
            "TargetRecvDataSegmentLength": "262144",
        },
    )
    offered = dict(_negotiate(initiator, target))
    assert offered["RDMAExtensions"] == "Yes"
    params = initiator.negotiated()
    assert params["RDMAExtensions"] == "Yes"
    require_rdma(params)
    assert iser_data_lengths(params) == (262144, 8192)


def test_a_tcp_only_target_fails_the_login_as_iscsid() -> None:
    initiator = Negotiator("initiator", iser_operational(normal_operational_keys()))
    _negotiate(initiator, Negotiator("target", {}))
    params = initiator.negotiated()
    assert params["RDMAExtensions"] == "No"
    with pytest.raises(FatalLoginError, match="Target must support RDMAExtensions"):
        require_rdma(params)
