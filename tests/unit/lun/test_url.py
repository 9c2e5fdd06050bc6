"""libiscsi-style iSCSI URLs (iscsikit.lun.url)."""

from __future__ import annotations

import pytest

from iscsikit.errors import InvalidParameterError
from iscsikit.lun.url import parse_iscsi_url

IQN = "iqn.2024-01.test.iscsikit:disk"


def test_plain() -> None:
    url = parse_iscsi_url(f"iscsi://127.0.0.1:3261/{IQN}/1", env={})
    assert (url.portal.host, url.portal.port, url.target, url.lun) == ("127.0.0.1", 3261, IQN, 1)
    assert url.user is None and url.password is None
    assert url.header_digest == "None,CRC32C"  # libiscsi's default offer
    assert url.data_digest == "None"
    assert str(url) == f"iscsi://127.0.0.1:3261/{IQN}/1"


def test_default_port_and_ipv6() -> None:
    url = parse_iscsi_url(f"iscsi://[fd00::1]/{IQN}/0", env={})
    assert url.portal.host == "fd00::1" and url.portal.port == 3260
    url = parse_iscsi_url(f"iscsi://[::1]:3262/{IQN}/7", env={})
    assert (url.portal.host, url.portal.port, url.lun) == ("::1", 3262, 7)


def test_chap_user_password_and_escapes() -> None:
    url = parse_iscsi_url(f"iscsi://alice%s3cr%25t@host/{IQN}/2", env={})
    assert url.user == "alice" and url.password == "s3cr%t"
    assert str(url) == f"iscsi://alice@host:3260/{IQN}/2"  # no password in str()


def test_password_from_environment_like_libiscsi() -> None:
    url = parse_iscsi_url(f"iscsi://alice@host/{IQN}/0", env={"LIBISCSI_CHAP_PASSWORD": "pw"})
    assert url.password == "pw"
    with pytest.raises(InvalidParameterError, match="no password"):
        parse_iscsi_url(f"iscsi://alice@host/{IQN}/0", env={})


def test_mutual_chap_and_digest_arguments() -> None:
    url = parse_iscsi_url(
        f"iscsi://u%p@host/{IQN}/0?target_user=t&target_password=tp"
        "&header_digest=crc32c&data_digest=crc32c-none&initiator_name=iqn.2024-01.x:y",
        env={},
    )
    assert (url.target_user, url.target_password) == ("t", "tp")
    assert url.header_digest == "CRC32C" and url.data_digest == "CRC32C,None"
    assert url.initiator_name == "iqn.2024-01.x:y"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("http://host/iqn/0", "expected"),
        (f"iscsi://host/{IQN}", "<lun>"),
        (f"iscsi://host/{IQN}/x", "no number"),
        (f"iscsi://host/{IQN}/16384", "above 16383"),
        ("iscsi://host/", "target-iqn"),
        (f"iscsi:///{IQN}/0", "no host"),
        (f"iscsi://host/{IQN}/0?bogus=1", "unknown argument"),
        (f"iscsi://host/{IQN}/0?header_digest=md5", "header_digest"),
        (f"iscsi://host/{IQN}/0?target_user=t&target_password=p", "needs a user"),
        (f"iscsi://u%p@host/{IQN}/0?target_user=t", "both"),
        (f"iser://host/{IQN}/0", "iser"),
        (f"iscsi://host:99999/{IQN}/0", "port"),
    ],
)
def test_bad_urls_are_invalid_parameters(text: str, why: str) -> None:
    with pytest.raises(InvalidParameterError, match=why) as info:
        parse_iscsi_url(text, env={})
    assert info.value.code == 7
