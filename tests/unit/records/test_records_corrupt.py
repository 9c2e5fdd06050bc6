"""Damaged records and what iscsikit writes over them (issue 14; the iscsiadm side of
each case is in tests/integration/test_records_corrupt_oracle.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from iscsikit.config.registry import RecordType
from iscsikit.errors import DatabaseError
from iscsikit.records import DiscoveryRecord, IfaceRecord, NodeRecord, Records
from iscsikit.records.fileformat import parse_record

T = "iqn.2001-04.com.example:corrupt"


@pytest.fixture
def db(tmp_path: Path) -> Records:
    return Records.at(tmp_path / "iscsi", durable=False)


@pytest.mark.parametrize("damage", ["", "\x00\x01garbage without lines"])
def test_update_of_a_damaged_discovery_record_writes_its_identity(db: Records, damage: str) -> None:
    """The record is found by its path; what the update writes names it, so that
    iscsiadm (which reads the identity from the file) reads the same record back."""
    db.add_discovery(DiscoveryRecord.new("sendtargets", "10.0.0.9", 3261))
    path = db.db_root / "send_targets" / "10.0.0.9,3261" / "st_config"
    path.write_text(damage)
    record = db.discovery("sendtargets", "10.0.0.9", 3261)
    record.set("discovery.startup", "automatic")
    db.update_discovery(record)
    values = parse_record(path.read_text(), RecordType.SENDTARGETS).values
    assert values["discovery.sendtargets.address"] == "10.0.0.9"
    assert values["discovery.sendtargets.port"] == "3261"
    assert values["discovery.type"] == "sendtargets"
    assert values["discovery.startup"] == "automatic"


def test_update_of_an_empty_iface_file_writes_its_name(db: Records) -> None:
    db.add_iface(IfaceRecord.new("ifx"))
    path = db.db_root / "ifaces" / "ifx"
    path.write_text("")
    record = db.iface("ifx")
    record.set("iface.net_ifacename", "lo")
    db.update_iface(record)
    values = parse_record(path.read_text(), RecordType.IFACE).values
    assert values["iface.iscsi_ifacename"] == "ifx"
    assert values["iface.net_ifacename"] == "lo"


def test_a_batch_writes_the_others_and_refuses_a_foreign_file(db: Records) -> None:
    """add_nodes over a file that names another node: that one is refused (iscsiadm's
    message, 6) and left as it is; the rest of the batch is written."""
    db.add_node(NodeRecord.new(T, "10.0.0.1", 3260, 1))
    path = db.db_root / "nodes" / T / "10.0.0.1,3260,1" / "default"
    foreign = path.read_text().replace(f"node.name = {T}\n", f"node.name = {T}.x\n")
    path.write_text(foreign)
    fresh = [NodeRecord.new(T, "10.0.0.1", 3260, 1), NodeRecord.new(f"{T}2", "10.0.0.1", 3260, 1)]
    with pytest.raises(DatabaseError) as err:
        db.add_nodes(fresh)
    named = db.db_root / "nodes" / f"{T}.x" / "10.0.0.1,3260,1" / "default"
    assert str(err.value) == f"Could not stat {named} to delete node: No such file or directory"
    assert path.read_text() == foreign
    assert db.node(target=f"{T}2").target == f"{T}2"


def test_new_over_a_dangling_record_link_fails_as_iscsiadm(db: Records, tmp_path: Path) -> None:
    db.add_node(NodeRecord.new(T, "10.0.0.1", 3260, 1))
    path = db.db_root / "nodes" / T / "10.0.0.1,3260,1" / "default"
    path.unlink()
    path.symlink_to(tmp_path / "gone")
    with pytest.raises(DatabaseError, match=r"Could not open .*: No such file or directory"):
        db.add_node(NodeRecord.new(T, "10.0.0.1", 3260, 1))
    assert path.is_symlink() and not (tmp_path / "gone").exists()


@pytest.mark.parametrize("edit", ["canonical", "crlf", "duplicate", "no-name"])
def test_record_values_reads_as_the_parser(db: Records, edit: str) -> None:
    """The identity check's fast reader agrees with parse_record on every file."""
    from iscsikit.records.fileformat import record_values

    db.add_node(NodeRecord.new(T, "10.0.0.1", 3260, 1))
    text = (db.db_root / "nodes" / T / "10.0.0.1,3260,1" / "default").read_text()
    if edit == "crlf":
        text = text.replace("\n", "\r\n")
    elif edit == "duplicate":
        text = text.replace("# END RECORD", f"node.name = {T}.x\n# END RECORD")
    elif edit == "no-name":
        text = text.replace(f"node.name = {T}\n", "")
    values = record_values(text, RecordType.NODE)
    assert values == parse_record(text, RecordType.NODE).values
    assert values.get("node.name") == {"duplicate": f"{T}.x", "no-name": None}.get(edit, T)
