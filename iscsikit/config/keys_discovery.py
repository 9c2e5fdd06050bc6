"""Discovery record keys: SendTargets (``st_config``) and iSNS (``isns_config``).

Order (on disk and in ``-m discoverydb -o show``) verified with iscsiadm 2.1.8.
"""

from __future__ import annotations

from iscsikit.config.keyspec import (
    AUTH_METHODS,
    CHAP_ALGS,
    DISC_TYPES,
    VALUE_MAX,
    YES_NO,
    KeySpec,
    flags,
)

# -- discovery records -------------------------------------------------------------------


def _disc_common(type_default: str) -> tuple[KeySpec, ...]:
    return (
        KeySpec(
            "discovery.startup",
            "enum",
            "manual",
            "Discovery startup mode",
            allowed=("manual", "automatic"),
        ),
        KeySpec(
            "discovery.type",
            "enum",
            type_default,
            "Discovery type (record id)",
            allowed=DISC_TYPES,
            flags=flags("id"),
        ),
    )


#: SendTargets discovery record (``send_targets/<ip>,<port>/st_config``), usr/idbm.c
#: order, which is also the ``-m discoverydb -o show`` order.
SENDTARGETS_SPECS: tuple[KeySpec, ...] = (
    *_disc_common("sendtargets"),
    KeySpec(
        "discovery.sendtargets.address",
        "string",
        "",
        "SendTargets portal address (record id)",
        flags=flags("id"),
        max_length=VALUE_MAX,
    ),
    KeySpec(
        "discovery.sendtargets.port",
        "int32",
        "3260",
        "SendTargets portal port (record id)",
        flags=flags("id"),
    ),
    KeySpec(
        "discovery.sendtargets.auth.authmethod",
        "enum",
        "None",
        "Discovery session authentication method",
        allowed=AUTH_METHODS,
    ),
    KeySpec(
        "discovery.sendtargets.auth.username",
        "string",
        "",
        "CHAP name for the discovery session",
        max_length=VALUE_MAX,
    ),
    KeySpec(
        "discovery.sendtargets.auth.password",
        "string",
        "",
        "CHAP secret for the discovery session",
        flags=flags("mask"),
        max_length=VALUE_MAX,
    ),
    KeySpec(
        "discovery.sendtargets.auth.password_length",
        "int32",
        "0",
        "Length of discovery.sendtargets.auth.password (set automatically)",
        flags=flags("hide"),
    ),
    KeySpec(
        "discovery.sendtargets.auth.username_in",
        "string",
        "",
        "CHAP name the target must send in discovery (mutual CHAP)",
        max_length=VALUE_MAX,
    ),
    KeySpec(
        "discovery.sendtargets.auth.password_in",
        "string",
        "",
        "CHAP secret the target must use in discovery (mutual CHAP)",
        flags=flags("mask"),
        max_length=VALUE_MAX,
    ),
    KeySpec(
        "discovery.sendtargets.auth.password_in_length",
        "int32",
        "0",
        "Length of discovery.sendtargets.auth.password_in (set automatically)",
        flags=flags("hide"),
    ),
    KeySpec(
        "node.session.auth.chap_algs",
        "list",
        "MD5",
        "CHAP algorithms offered in discovery (the node key name, reused)",
        allowed=CHAP_ALGS,
    ),
    KeySpec(
        "discovery.sendtargets.timeo.login_timeout",
        "int32",
        "15",
        "Seconds for the discovery connect and login",
    ),
    KeySpec(
        "discovery.sendtargets.use_discoveryd",
        "enum",
        "No",
        "Poll this portal from iscsid's discovery daemon",
        allowed=YES_NO,
    ),
    KeySpec(
        "discovery.sendtargets.discoveryd_poll_inval",
        "int32",
        "30",
        "discoveryd poll interval in seconds; 0 = once, <0 = 30",
    ),
    KeySpec(
        "discovery.sendtargets.reopen_max",
        "int32",
        "5",
        "Connection attempts for discovery",
    ),
    KeySpec(
        "discovery.sendtargets.timeo.auth_timeout",
        "int32",
        "45",
        "Seconds allowed for discovery authentication",
    ),
    KeySpec(
        "discovery.sendtargets.timeo.active_timeout",
        "int32",
        "30",
        "Seconds to wait for the SendTargets response",
    ),
    KeySpec(
        "discovery.sendtargets.iscsi.MaxRecvDataSegmentLength",
        "int32",
        "32768",
        "MaxRecvDataSegmentLength offered by discovery sessions",
        conf_default="32768",
    ),
)

#: iSNS discovery record (``isns/<ip>,<port>/isns_config``); it reuses the
#: ``discovery.sendtargets.address/port`` key names.
ISNS_SPECS: tuple[KeySpec, ...] = (
    *_disc_common("isns"),
    KeySpec(
        "discovery.sendtargets.address",
        "string",
        "",
        "iSNS server address (record id)",
        flags=flags("id"),
        max_length=VALUE_MAX,
    ),
    KeySpec(
        "discovery.sendtargets.port",
        "int32",
        "3205",
        "iSNS server port (record id)",
        flags=flags("id"),
    ),
    KeySpec(
        "discovery.isns.use_discoveryd",
        "enum",
        "No",
        "Listen for iSNS state change notifications in iscsid's discovery daemon",
        allowed=YES_NO,
    ),
    KeySpec(
        "discovery.isns.discoveryd_poll_inval",
        "int32",
        "-1",
        "iSNS registration refresh in seconds; -1 = server's period, 0 = once",
    ),
)
