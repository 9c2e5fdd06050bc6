"""The stderr comparison rules of stderr.py (what "the same messages" means)."""

from __future__ import annotations

from .stderr import normalise_stderr, stderr_problems


def test_decorations_prefixes_and_roots_are_normalised() -> None:
    iscsiadm = (
        "iscsiadm: can not connect to iSCSI daemon (111)!\n"
        "iSCSI ERROR: config file /etc/iscsi/ifaces/if6 invalid.        "
        "# idbm.c:_idbm_recs_read():900\n"
        "/usr/sbin/iscsiadm: invalid option -- 'z'\n"
        "Try `iscsiadm --help' for more information.\n"
    )
    ours = (
        "iscsikit-adm: config file /tmp/pytest-of-root/x/root/etc/iscsi/ifaces/if6 invalid.\n"
        "iscsikit-adm: invalid option -- 'z'\n"
        "Try `iscsikit-adm --help' for more information.\n"
    )
    assert (
        normalise_stderr(iscsiadm)
        == normalise_stderr(ours)
        == [
            "config file /etc/iscsi/ifaces/if6 invalid.",
            "invalid option -- 'z'",
            "Try `TOOL --help' for more information.",
        ]
    )
    assert stderr_problems("case", iscsiadm, ours) == []


def test_more_is_allowed_less_or_other_is_not() -> None:
    iscsiadm = "iscsiadm: Error while adding record: \niscsiadm: Could not add.\n"
    longer = "iscsikit-adm: a hint\niscsikit-adm: Error while adding record: no portal\n"
    assert stderr_problems("case", iscsiadm, longer + "iscsikit-adm: Could not add.\n") == []
    assert stderr_problems("case", iscsiadm, longer)  # a line missing
    swapped = "iscsikit-adm: Could not add.\niscsikit-adm: Error while adding record: \n"
    assert stderr_problems("case", iscsiadm, swapped)  # out of order
    assert stderr_problems("case", "iscsiadm: No records found\n", "")
