"""CHAP with every algorithm against an independent implementation: LIO's, in the kernel.

The project's own CHAP is checked against its own target and against ``openssl dgst``
vectors (tests/unit/proto/test_chap_openssl.py); here the kernel's iSCSI target
(``iscsi_target_mod``, which implements CHAP_A 5, 6, 7 and 8 in Linux 6.1) verifies
iscsikit's responses and iscsikit verifies the kernel's, with mutual CHAP.  Each login
offers one algorithm only, so a success means both sides computed that digest alike; a
wrong secret in either direction must fail with an authentication error (exit 24).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import iscsikit
from iscsikit import Chap, IscsiErr, IscsiError
from iscsikit.testing.lio import Lio, LioChap, lio_missing
from iscsikit.testing.vmguest.checks import wait_for

pytestmark = pytest.mark.skipif(lio_missing() is not None, reason=str(lio_missing()))

IQN = "iqn.2024-01.test.iscsikit.vm:lio-chap-algs"
INITIATOR = "iqn.2024-01.test.iscsikit.vm:chap-initiator"
SECRETS = LioChap("chap-user", "chap-secret-2468", "lio-user", "lio-secret-1357")
ALGORITHMS = ("MD5", "SHA1", "SHA256", "SHA3-256")


@pytest.fixture(scope="module")
def lio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lio]:
    workdir = tmp_path_factory.mktemp("lio-chap")
    with Lio(IQN, workdir=workdir, size=8 << 20, initiator=INITIATOR, chap=SECRETS) as target:
        yield target


def _chap(algorithm: str, *, secret: str = SECRETS.password, lio_secret: str | None = None) -> Chap:
    assert SECRETS.mutual_user is not None and SECRETS.mutual_password is not None
    return Chap(
        SECRETS.user,
        secret,
        SECRETS.mutual_user,
        lio_secret if lio_secret is not None else SECRETS.mutual_password,
        algorithms=algorithm,
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_mutual_chap_with_each_algorithm(lio: Lio, algorithm: str) -> None:
    wait_for("LIO to drop the last session", lambda: lio.sessions() == [])
    with iscsikit.login(
        lio.portal, IQN, chap=_chap(algorithm), initiator_name=INITIATOR, retries=1
    ) as session:
        assert session.params["AuthMethod"] == "CHAP"
        assert len(lio.sessions()) == 1
        assert session.ping() < 10
    wait_for("LIO to end the session", lambda: lio.sessions() == [])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_secrets_fail_with_each_algorithm(lio: Lio, algorithm: str) -> None:
    for chap in (
        _chap(algorithm, secret="not-" + SECRETS.password),  # LIO refuses our response
        _chap(algorithm, lio_secret="not-" + str(SECRETS.mutual_password)),  # we refuse LIO's
    ):
        with pytest.raises(IscsiError) as info:
            iscsikit.login(lio.portal, IQN, chap=chap, initiator_name=INITIATOR, retries=1)
        assert info.value.code is IscsiErr.LOGIN_AUTH_FAILED
        assert lio.sessions() == []  # the failed login left no session behind
