"""libiscsi-style iSCSI URLs: ``iscsi://[user[%password]@]host[:port]/target-iqn/lun``.

The grammar is libiscsi's (``iscsi_parse_full_url``), so the same URL names the same
LUN for ``iscsi-ls``, ``iscsi-perf``, qemu and iscsikit:

* the user and password are separated by ``%`` (a URL-escaped ``%25`` stays a literal
  percent sign inside the password); without a password in the URL,
  ``LIBISCSI_CHAP_PASSWORD`` from the environment is used, as libiscsi does;
* IPv6 hosts are bracketed: ``iscsi://[fd00::1]:3260/iqn.../0``;
* arguments after ``?``, ``&``-separated: ``target_user`` / ``target_password`` (mutual
  CHAP; ``LIBISCSI_CHAP_TARGET_PASSWORD`` as the fallback), ``header_digest`` /
  ``data_digest`` (``none``, ``crc32c``, ``none-crc32c``, ``crc32c-none`` - libiscsi
  spells them that way - or open-iscsi's ``None``/``CRC32C``/``CRC32C,None``...),
  ``initiator_name``; an unknown argument is an error, not silently ignored.

``iser://`` URLs are recognised and refused: iscsikit's userspace data path is TCP.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from iscsikit.errors import InvalidParameterError
from iscsikit.proto.address import Portal, parse_portal

DEFAULT_PORT = 3260

_DIGESTS = {
    "none": "None",
    "crc32c": "CRC32C",
    "none-crc32c": "None,CRC32C",
    "crc32c-none": "CRC32C,None",
    "none,crc32c": "None,CRC32C",
    "crc32c,none": "CRC32C,None",
}


@dataclass(frozen=True, slots=True)
class IscsiUrl:
    """A parsed iSCSI URL.  ``str()`` gives it back without the passwords."""

    portal: Portal
    target: str
    lun: int
    user: str | None = None
    password: str | None = None
    target_user: str | None = None
    target_password: str | None = None
    header_digest: str = "None,CRC32C"
    data_digest: str = "None"
    initiator_name: str | None = None

    def __str__(self) -> str:
        who = f"{self.user}@" if self.user else ""
        return f"iscsi://{who}{self.portal}/{self.target}/{self.lun}"


def chap_password_from_env(url: str, user: str, environ: Mapping[str, str] = os.environ) -> str:
    """The password of a URL that names ``user`` but no password: libiscsi's
    ``LIBISCSI_CHAP_PASSWORD``; InvalidParameterError when it is not set either."""
    password = environ.get("LIBISCSI_CHAP_PASSWORD")
    if password is None:
        raise InvalidParameterError(
            f"iSCSI URL {url!r} names user {user!r} but no password "
            "(user%password@ or LIBISCSI_CHAP_PASSWORD)"
        )
    return password


def parse_iscsi_url(url: str, env: Mapping[str, str] | None = None) -> IscsiUrl:
    """Parse ``url``; raises :class:`InvalidParameterError` (exit 7) on any problem."""
    environ = os.environ if env is None else env
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("iscsi", "iser"):
        raise InvalidParameterError(
            f"invalid iSCSI URL {url!r}: expected "
            "iscsi://[<user>[%<password>]@]<host>[:<port>]/<target-iqn>/<lun>"
        )
    if scheme.lower() == "iser":
        raise InvalidParameterError("iser:// URLs need the iser transport; use iscsi://")
    rest, _, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    if not slash:
        raise InvalidParameterError(f"invalid iSCSI URL {url!r}: no target name")
    user = password = None
    if "@" in authority:
        credentials, _, authority = authority.rpartition("@")
        user, pct, password_text = credentials.partition("%")
        user = unquote(user)
        password = unquote(password_text) if pct else None
        if not user:
            raise InvalidParameterError(f"invalid iSCSI URL {url!r}: empty user name")
    if not authority:
        raise InvalidParameterError(f"invalid iSCSI URL {url!r}: no host")
    portal = parse_portal(authority, default_port=DEFAULT_PORT)
    target, slash, lun_text = path.rpartition("/")
    if not slash or not target:
        raise InvalidParameterError(f"invalid iSCSI URL {url!r}: expected <target-iqn>/<lun>")
    if not lun_text.isdigit():
        raise InvalidParameterError(f"invalid iSCSI URL {url!r}: LUN {lun_text!r} is no number")
    lun = int(lun_text)
    if lun > 16383:
        raise InvalidParameterError(f"invalid iSCSI URL {url!r}: LUN {lun} is above 16383")
    args = _arguments(url, query)
    if user is not None and password is None:
        password = chap_password_from_env(url, user, environ)
    target_user = args.pop("target_user", None)
    target_password = args.pop("target_password", None)
    if target_user is not None and target_password is None:
        target_password = environ.get("LIBISCSI_CHAP_TARGET_PASSWORD")
    if (target_user is None) != (target_password is None):
        raise InvalidParameterError("mutual CHAP needs both target_user and target_password")
    if target_user is not None and user is None:
        raise InvalidParameterError("mutual CHAP (target_user) needs a user in the URL too")
    header = _digest(args.pop("header_digest", "none-crc32c"), "header_digest")
    data = _digest(args.pop("data_digest", "none"), "data_digest")
    initiator = args.pop("initiator_name", None)
    if args:
        raise InvalidParameterError(
            f"invalid iSCSI URL {url!r}: unknown argument(s) {', '.join(sorted(args))}"
        )
    return IscsiUrl(
        portal=portal,
        target=unquote(target),
        lun=lun,
        user=user,
        password=password,
        target_user=target_user,
        target_password=target_password,
        header_digest=header,
        data_digest=data,
        initiator_name=initiator,
    )


def _arguments(url: str, query: str) -> dict[str, str]:
    args: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidParameterError(f"invalid iSCSI URL {url!r}: argument {key!r} has no value")
        args[key.lower()] = unquote(value)
    return args


def _digest(value: str, name: str) -> str:
    try:
        return _DIGESTS[value.lower()]
    except KeyError:
        raise InvalidParameterError(
            f"{name}={value!r}: expected one of none, crc32c, none-crc32c, crc32c-none"
        ) from None


__all__ = ["DEFAULT_PORT", "IscsiUrl", "chap_password_from_env", "parse_iscsi_url"]
