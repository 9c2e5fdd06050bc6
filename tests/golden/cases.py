"""The golden battery as data: every case is a starting database and one invocation.

A :class:`Case` is (name, setup steps, argv, flags). Setup steps are iscsiadm invocations
that build the starting database (run through the oracle when open-iscsi is present,
else through iscsikit-adm); then the invocation runs through both tools on byte-identical
copies of that database, and stdout, exit code and the database tree afterwards must
match (:mod:`.harness`).

Placeholders in argv (setup and invocation) are replaced at run time and put back into
the stored outputs, because the tgtd ports are picked at random:

* ``{PORTAL}`` / ``{PORT}``: a tgtd on 127.0.0.1 exporting :data:`ALPHA` and :data:`BETA`;
* ``{EMPTY_PORTAL}`` / ``{EMPTY_PORT}``: a tgtd on 127.0.0.1 exporting nothing.

Every address in a record is a loopback one: nothing here may send traffic anywhere
else, even by mistake (a login that gets past the missing daemon would go to 127/8).

This module holds data only; it must not run anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ALPHA",
    "BETA",
    "CASES",
    "CASES_BY_NAME",
    "INITIATOR",
    "JSON_CASES",
    "PLACEHOLDERS",
    "PLACEHOLDER_RE",
    "SECRETS",
    "Case",
    "Step",
]

#: The initiator name of every golden database (initiatorname.iscsi).
INITIATOR = "iqn.2024-01.test.golden:initiator"
#: What the iface "gold" logs in as: iscsiadm without iscsid cannot learn the initiator
#: name from initiatorname.iscsi, so discovery against tgtd goes through an iface with one.
GOLD_INITIATOR = "iqn.2024-01.test.golden:gold"

ALPHA = "iqn.2024-01.test.golden:alpha"
BETA = "iqn.2024-01.test.golden:beta"
#: Exported by the "empty" tgtd with a closed ACL: discovery there finds no portals.
HIDDEN = "iqn.2024-01.test.golden:hidden"

T1 = "iqn.2001-04.com.example:storage.disk1"
T2 = "iqn.2001-04.com.example:storage.disk2"
T3 = "iqn.2001-04.com.example:storage.legacy"
TN = "iqn.2001-04.com.example:storage.new"
NOPE = "iqn.2001-04.com.example:storage.nope"
#: A number of more digits than Python's int() reads (4300): C's strtoul saturates.
HUGE = "9" * 5000

#: CHAP secrets in the starting databases: never printed without -S.
SECRET = "goldensecret1"
SECRET_IN = "targetsecret2"
SECRETS = (SECRET, SECRET_IN)

PLACEHOLDERS = ("{PORTAL}", "{PORT}", "{EMPTY_PORTAL}", "{EMPTY_PORT}")
PLACEHOLDER_RE = re.compile(r"\{(?:EMPTY_)?PORT(?:AL)?\}")


@dataclass(frozen=True, slots=True)
class Step:
    """One setup invocation of iscsiadm (or iscsikit-adm); must exit 0."""

    argv: tuple[str, ...]
    #: Run iscsiadm in the host's network namespace (it must reach tgtd on loopback).
    host_network: bool = False


def adm(*argv: str) -> Step:
    return Step(argv)


def net(*argv: str) -> Step:
    """A setup step that reaches tgtd."""
    return Step(argv, host_network=True)


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    argv: tuple[str, ...]
    setup: tuple[Step, ...] = ()
    #: iscsiadm runs in the host's network namespace, where no iscsid answers: discovery
    #: against tgtd, and login/logout (which must then fail as without a daemon, exit 20).
    host_network: bool = False
    #: iscsiadm prints these records in readdir order (arbitrary, file-system dependent):
    #: stdout is compared as a multiset of lines (docs/compatibility.md).
    unordered: bool = False
    #: stdout differs on purpose (the reason, also in docs/compatibility.md): only the
    #: exit code is compared.
    deliberate: str | None = None

    @property
    def needs_tgtd(self) -> bool:
        words = [*self.argv, *(w for step in self.setup for w in step.argv)]
        return any(PLACEHOLDER_RE.search(w) for w in words)

    @property
    def minimal_conf(self) -> bool:
        """Whether both tools get an iscsid.conf holding only ``iscsid.startup``.

        iscsiadm runs without iscsid when it reaches tgtd and then ignores iscsid.conf
        (compiled defaults); an iscsid.conf that sets nothing makes iscsikit-adm, and
        iscsiadm's other steps, use the same defaults.
        """
        return self.needs_tgtd

    @property
    def mode(self) -> str | None:
        for i, word in enumerate(self.argv[:-1]):
            if word in ("-m", "--mode"):
                return self.argv[i + 1]
        return None


# -- starting databases ---------------------------------------------------------------

EMPTY: tuple[Step, ...] = ()

IFX = (
    adm("-m", "iface", "-I", "ifx", "-o", "new"),
    adm("-m", "iface", "-I", "ifx", "-o", "update", "-n", "iface.net_ifacename", "-v", "lo"),
)

#: T1 on two portals (one IPv6), T2 on one portal through two ifaces, T3 without tpgt.
NODES = (
    *IFX,
    adm("-m", "node", "-o", "new", "-T", T1, "-p", "127.0.0.1:3260,1"),
    adm("-m", "node", "-o", "new", "-T", T1, "-p", "[::1]:3261,5"),
    adm("-m", "node", "-o", "new", "-T", T2, "-p", "127.0.0.2,2"),
    adm("-m", "node", "-o", "new", "-T", T2, "-p", "127.0.0.2,2", "-I", "ifx"),
    adm("-m", "node", "-o", "new", "-T", T3, "-p", "127.0.0.3"),
)

CHAP = (
    *NODES,
    adm(
        "-m", "node", "-o", "update", "-T", T1, "-p", "127.0.0.1:3260",
        "-n", "node.session.auth.authmethod", "-v", "CHAP",
        "-n", "node.session.auth.username", "-v", "golden",
        "-n", "node.session.auth.password", "-v", SECRET,
        "-n", "node.session.auth.username_in", "-v", "target",
        "-n", "node.session.auth.password_in", "-v", SECRET_IN,
    ),
)  # fmt: skip

#: One node: a login without a daemon tries exactly one portal.
ONE_NODE = (adm("-m", "node", "-o", "new", "-T", T1, "-p", "127.0.0.1:3260,1"),)

IFACES = (
    *IFX,
    adm(
        "-m", "iface", "-I", "ifx", "-o", "update",
        "-n", "iface.ipaddress", "-v", "127.0.0.1",
        "-n", "iface.initiatorname", "-v", GOLD_INITIATOR,
    ),
    adm("-m", "iface", "-I", "spare", "-o", "new"),
    adm("-m", "node", "-o", "new", "-T", T1, "-p", "127.0.0.1:3260,1", "-I", "ifx"),
    adm("-m", "node", "-o", "new", "-T", T2, "-p", "127.0.0.2:3260,1", "-I", "ifx"),
    adm("-m", "node", "-o", "new", "-T", T2, "-p", "127.0.0.2:3260,1"),
)  # fmt: skip

#: iscsiadm 2.1.8 writes an IPv6 iface with keys (iface.dup_addr_detect_cnt, ...) that
#: it cannot read back: every later iface listing or show of it fails.
IFACE6 = (
    adm("-m", "iface", "-I", "if6", "-o", "new"),
    adm("-m", "iface", "-I", "if6", "-o", "update", "-n", "iface.ipaddress", "-v", "::1"),
)

#: The iface discovery goes through (see GOLD_INITIATOR).
GOLD = (
    adm("-m", "iface", "-I", "gold", "-o", "new"),
    adm(
        "-m", "iface", "-I", "gold", "-o", "update",
        "-n", "iface.initiatorname", "-v", GOLD_INITIATOR,
    ),
)  # fmt: skip

DISCOVERED = (*GOLD, net("-m", "discovery", "-t", "st", "-p", "{PORTAL}"))

#: Discovered nodes, one of them changed by hand, plus a static node and a discovery
#: record of each kind.
DISCOVERED_MIXED = (
    *DISCOVERED,
    adm(
        "-m", "node", "-o", "update", "-T", ALPHA, "-p", "{PORTAL}",
        "-n", "node.startup", "-v", "automatic",
    ),
    adm("-m", "node", "-o", "new", "-T", T1, "-p", "127.0.0.1:3260,1"),
    adm("-m", "discoverydb", "-t", "isns", "-p", "127.0.0.1", "-o", "new"),
)  # fmt: skip

DISCOVERYDB = (
    adm("-m", "discoverydb", "-t", "st", "-p", "127.0.0.1", "-o", "new"),
    adm("-m", "discoverydb", "-t", "st", "-p", "[::1]:3261", "-o", "new"),
    adm("-m", "discoverydb", "-t", "isns", "-p", "127.0.0.1", "-o", "new"),
    adm(
        "-m", "discoverydb", "-t", "st", "-p", "127.0.0.1", "-o", "update",
        "-n", "discovery.sendtargets.auth.authmethod", "-v", "CHAP",
        "-n", "discovery.sendtargets.auth.username", "-v", "golden",
        "-n", "discovery.sendtargets.auth.password", "-v", SECRET,
    ),
)  # fmt: skip

_VERSION = "the version line names iscsikit-adm and its own version"
_HELP = "the usage text names iscsikit-adm and lists its extensions (--output, --debug)"


def _c(
    name: str,
    setup: tuple[Step, ...],
    *argv: str,
    host_network: bool = False,
    unordered: bool = False,
    deliberate: str | None = None,
) -> Case:
    return Case(name, argv, setup, host_network, unordered, deliberate)


# -- the battery ----------------------------------------------------------------------

# fmt: off
NODE_CASES = (
    # listing and print levels
    _c("node_list_empty", EMPTY, "-m", "node"),
    _c("node_list_p1_empty", EMPTY, "-m", "node", "-P", "1"),
    _c("node_list", NODES, "-m", "node"),
    _c("node_list_long_options", NODES, "--mode", "node", "--print", "0"),
    _c("node_list_p0", NODES, "-m", "node", "-P", "0"),
    _c("node_list_p1", NODES, "-m", "node", "-P", "1"),
    _c("node_list_p2", NODES, "-m", "node", "-P", "2"),
    _c("node_list_p_not_a_number", NODES, "-m", "node", "-P", "abc"),
    # show, with every filter combination
    _c("node_show_T", NODES, "-m", "node", "-T", T1),
    _c("node_show_T_p", NODES, "-m", "node", "-T", T1, "-p", "127.0.0.1:3260"),
    _c("node_show_T_p_ipv6", NODES, "-m", "node", "-T", T1, "-p", "[::1]:3261"),
    _c("node_show_p", NODES, "-m", "node", "-p", "127.0.0.2"),
    _c("node_show_I", NODES, "-m", "node", "-I", "ifx"),
    _c("node_show_T_I", NODES, "-m", "node", "-T", T2, "-I", "default"),
    _c("node_show_p_I", NODES, "-m", "node", "-p", "127.0.0.2:3260", "-I", "ifx"),
    _c("node_show_T_p_I", NODES, "-m", "node", "-T", T2, "-p", "127.0.0.2", "-I", "ifx"),
    _c("node_show_no_tpgt", NODES, "-m", "node", "-T", T3),
    _c("node_show_o_show", NODES, "-m", "node", "-o", "show", "-T", T2, "-p", "127.0.0.2"),
    _c("node_show_o_show_all", NODES, "-m", "node", "-o", "show"),
    _c("node_show_T_P1", NODES, "-m", "node", "-T", T1, "-P", "1"),
    _c("node_show_unknown_T", NODES, "-m", "node", "-T", NOPE),
    _c("node_show_unknown_p", NODES, "-m", "node", "-p", "127.0.0.9"),
    _c("node_show_unknown_I", NODES, "-m", "node", "-T", T1, "-I", "ifx"),
    _c("node_show_chap_masked", CHAP, "-m", "node", "-T", T1, "-p", "127.0.0.1"),
    _c("node_show_chap_S", CHAP, "-m", "node", "-T", T1, "-p", "127.0.0.1", "-S"),
    # -o new, every portal form
    _c("node_new_ip", EMPTY, "-m", "node", "-o", "new", "-T", TN, "-p", "127.0.0.5"),
    _c("node_new_ip_port", EMPTY, "-m", "node", "-o", "new", "-T", TN, "-p", "127.0.0.5:3261"),
    _c(
        "node_new_ip_port_tpgt", EMPTY, "-m", "node", "-o", "new", "-T", TN, "-p",
        "127.0.0.5:3261,7",
    ),
    _c("node_new_ip_tpgt", EMPTY, "-m", "node", "-o", "new", "-T", TN, "-p", "127.0.0.5,3"),
    _c(
        "node_new_ipv6_port_tpgt", EMPTY, "-m", "node", "-o", "new", "-T", TN, "-p",
        "[::1]:3262,3",
    ),
    _c("node_new_ipv6_bare", EMPTY, "-m", "node", "-o", "new", "-T", TN, "-p", "::1"),
    _c("node_new_hostname", EMPTY, "-m", "node", "-o", "new", "-T", TN, "-p", "localhost:3263"),
    _c(
        "node_new_iface", NODES, "-m", "node", "-o", "new", "-T", TN, "-p", "127.0.0.5:3260,1",
        "-I", "ifx",
    ),
    _c(
        "node_new_existing", NODES, "-m", "node", "-o", "new", "-T", T1, "-p", "127.0.0.1:3260,1",
    ),
    _c("node_new_missing_p", NODES, "-m", "node", "-o", "new", "-T", TN),
    _c("node_new_only_T_existing", NODES, "-m", "node", "-o", "new", "-T", T1),
    _c("node_new_missing_T", NODES, "-m", "node", "-o", "new", "-p", "127.0.0.2"),
    _c(
        "node_new_unknown_iface", EMPTY, "-m", "node", "-o", "new", "-T", TN, "-p", "127.0.0.5",
        "-I", "nope",
    ),
    # -o update
    _c(
        "node_update_one", NODES, "-m", "node", "-o", "update", "-T", T1, "-p", "127.0.0.1:3260",
        "-n", "node.startup", "-v", "automatic",
    ),
    _c(
        "node_update_pairs", NODES, "-m", "node", "-o", "update", "-T", T2, "-n", "node.startup",
        "-v", "automatic", "-n", "node.session.timeo.replacement_timeout", "-v", "30", "-n",
        "node.conn[0].iscsi.HeaderDigest", "-v", "CRC32C,None",
    ),
    _c(
        "node_update_all", NODES, "-m", "node", "-o", "update", "-n", "node.session.scan", "-v",
        "manual",
    ),
    _c(
        "node_update_value_with_spaces", NODES, "-m", "node", "-o", "update", "-T", T3, "-n",
        "node.session.auth.username", "-v", "user name #1",
    ),
    _c(
        "node_update_invalid_key", NODES, "-m", "node", "-o", "update", "-T", T1, "-n", "node.foo",
        "-v", "1",
    ),
    _c(
        "node_update_invalid_enum", NODES, "-m", "node", "-o", "update", "-T", T1, "-p",
        "127.0.0.1", "-n", "node.startup", "-v", "bogus",
    ),
    _c(
        "node_update_name", NODES, "-m", "node", "-o", "update", "-T", T3, "-n", "node.name", "-v",
        TN,
    ),
    _c(
        "node_update_address", NODES, "-m", "node", "-o", "update", "-n", "node.conn[0].address",
        "-v", "127.0.0.7",
    ),
    _c(
        "node_update_iface_key", NODES, "-m", "node", "-o", "update", "-T", T1, "-n",
        "iface.iscsi_ifacename", "-v", "ifx",
    ),
    _c("node_update_missing_v", NODES, "-m", "node", "-o", "update", "-n", "node.startup"),
    _c(
        "node_update_unknown_record", NODES, "-m", "node", "-o", "update", "-T", NOPE, "-n",
        "node.startup", "-v", "manual",
    ),
    _c(
        "node_update_huge_number", NODES, "-m", "node", "-o", "update", "-T", T1, "-p",
        "127.0.0.1:3260", "-n", "node.session.cmds_max", "-v", HUGE,
    ),
    _c(
        "node_update_wrapping_number", NODES, "-m", "node", "-o", "update", "-T", T1, "-p",
        "127.0.0.1:3260", "-n", "node.session.timeo.replacement_timeout", "-v", "-99999999999",
    ),
    # -o delete
    _c("node_delete_T", NODES, "-m", "node", "-o", "delete", "-T", T1),
    _c("node_delete_T_p", NODES, "-m", "node", "-o", "delete", "-T", T1, "-p", "[::1]:3261"),
    _c("node_delete_p", NODES, "-m", "node", "-o", "delete", "-p", "127.0.0.2"),
    _c("node_delete_I", NODES, "-m", "node", "-o", "delete", "-I", "ifx"),
    _c("node_delete_all", NODES, "-m", "node", "-o", "delete"),
    _c("node_delete_unknown", NODES, "-m", "node", "-o", "delete", "-T", NOPE),
    _c("node_delete_empty", EMPTY, "-m", "node", "-o", "delete"),
    # sessions: none exist and no daemon runs
    _c(
        "node_login_no_daemon", ONE_NODE, "-m", "node", "-T", T1, "-p", "127.0.0.1:3260", "-l",
        host_network=True,
    ),
    _c("node_loginall_no_daemon", ONE_NODE, "-m", "node", "-L", "all", host_network=True),
    _c("node_login_unknown", NODES, "-m", "node", "-T", NOPE, "-l"),
    _c("node_logout_no_session", NODES, "-m", "node", "-T", T1, "-u"),
    _c("node_logoutall_no_session", NODES, "-m", "node", "-U", "all"),
    _c("node_rescan_no_session", NODES, "-m", "node", "-R"),
    _c("node_stats_no_session", NODES, "-m", "node", "-s"),
    # error paths
    _c("node_bad_op", NODES, "-m", "node", "-o", "bogus"),
    _c("node_op_not_for_mode", NODES, "-m", "node", "-o", "apply"),
    _c("node_two_ops", NODES, "-m", "node", "-o", "new", "-o", "delete", "-T", T1),
    _c("node_bad_option", NODES, "-m", "node", "-t", "st"),
    _c("node_login_and_logout", NODES, "-m", "node", "-l", "-u"),
    _c("node_missing_T_argument", NODES, "-m", "node", "-T"),
)

DISCOVERY_CASES = (
    # performing SendTargets discovery against tgtd
    _c("disc_st", GOLD, "-m", "discovery", "-t", "st", "-p", "{PORTAL}", host_network=True),
    _c(
        "disc_st_p1", GOLD, "-m", "discovery", "-t", "sendtargets", "-p", "{PORTAL}", "-P", "1",
        host_network=True,
    ),
    _c(
        "disc_st_iface", (*GOLD, *IFX), "-m", "discovery", "-t", "st", "-p", "{PORTAL}", "-I",
        "gold", host_network=True,
    ),
    _c(
        "disc_st_o_new", DISCOVERED_MIXED, "-m", "discovery", "-t", "st", "-p", "{PORTAL}", "-o",
        "new", host_network=True,
    ),
    _c(
        "disc_st_o_delete", DISCOVERED_MIXED, "-m", "discovery", "-t", "st", "-p", "{PORTAL}",
        "-o", "delete", host_network=True,
    ),
    _c(
        "disc_st_o_update", DISCOVERED_MIXED, "-m", "discovery", "-t", "st", "-p", "{PORTAL}",
        "-o", "update", host_network=True,
    ),
    _c(
        "disc_st_nonpersistent", GOLD, "-m", "discovery", "-t", "st", "-p", "{PORTAL}", "-o",
        "nonpersistent", host_network=True,
    ),
    _c(
        "disc_st_no_portals", GOLD, "-m", "discovery", "-t", "st", "-p", "{EMPTY_PORTAL}",
        host_network=True,
    ),
    # records
    _c("disc_list_empty", EMPTY, "-m", "discovery"),
    _c("disc_list_p1_empty", EMPTY, "-m", "discovery", "-P", "1"),
    _c("disc_list", DISCOVERYDB, "-m", "discovery", unordered=True),
    _c("disc_list_p1", DISCOVERED_MIXED, "-m", "discovery", "-P", "1", unordered=True),
    _c("disc_list_p2", DISCOVERYDB, "-m", "discovery", "-P", "2", unordered=True),
    _c("disc_show_p", DISCOVERYDB, "-m", "discovery", "-p", "127.0.0.1"),
    _c("disc_show_p_S", DISCOVERYDB, "-m", "discovery", "-p", "127.0.0.1", "-S"),
    _c("disc_delete_p", DISCOVERED_MIXED, "-m", "discovery", "-p", "{PORTAL}", "-o", "delete"),
    _c("disc_delete_unknown", DISCOVERYDB, "-m", "discovery", "-p", "127.0.0.9", "-o", "delete"),
    # error paths
    _c("disc_new_refused", DISCOVERYDB, "-m", "discovery", "-p", "127.0.0.1", "-o", "new"),
    _c(
        "disc_update_refused", DISCOVERYDB, "-m", "discovery", "-p", "127.0.0.1", "-o", "update",
        "-n", "discovery.sendtargets.use_discoveryd", "-v", "Yes",
    ),
    _c("disc_st_missing_p", EMPTY, "-m", "discovery", "-t", "st"),
    _c("disc_bad_option", EMPTY, "-m", "discovery", "-T", T1),
    _c("disc_bad_op", DISCOVERYDB, "-m", "discovery", "-p", "127.0.0.1", "-o", "bogus"),
)

DISCOVERYDB_CASES = (
    _c("ddb_new_st", EMPTY, "-m", "discoverydb", "-t", "st", "-p", "127.0.0.1", "-o", "new"),
    _c(
        "ddb_new_st_ipv6_port", EMPTY, "-m", "discoverydb", "-t", "sendtargets", "-p",
        "[::1]:3261", "-o", "new",
    ),
    _c("ddb_new_isns", EMPTY, "-m", "discoverydb", "-t", "isns", "-p", "127.0.0.1", "-o", "new"),
    _c("ddb_list", DISCOVERYDB, "-m", "discoverydb", unordered=True),
    _c("ddb_list_p1", DISCOVERYDB, "-m", "discoverydb", "-P", "1", unordered=True),
    _c("ddb_show_st", DISCOVERYDB, "-m", "discoverydb", "-t", "st", "-p", "127.0.0.1"),
    _c(
        "ddb_show_st_o_show_S", DISCOVERYDB, "-m", "discoverydb", "-t", "st", "-p", "127.0.0.1",
        "-o", "show", "-S",
    ),
    _c("ddb_show_st_ipv6", DISCOVERYDB, "-m", "discoverydb", "-t", "st", "-p", "[::1]:3261"),
    _c("ddb_show_isns", DISCOVERYDB, "-m", "discoverydb", "-t", "isns", "-p", "127.0.0.1"),
    _c("ddb_show_unknown", DISCOVERYDB, "-m", "discoverydb", "-t", "st", "-p", "127.0.0.9"),
    _c(
        "ddb_update", DISCOVERYDB, "-m", "discoverydb", "-t", "st", "-p", "127.0.0.1", "-o",
        "update", "-n", "discovery.sendtargets.use_discoveryd", "-v", "Yes", "-n",
        "discovery.sendtargets.discoveryd_poll_inval", "-v", "60",
    ),
    _c(
        "ddb_update_isns", DISCOVERYDB, "-m", "discoverydb", "-t", "isns", "-p", "127.0.0.1", "-o",
        "update", "-n", "discovery.isns.use_discoveryd", "-v", "Yes",
    ),
    _c(
        "ddb_update_invalid_key", DISCOVERYDB, "-m", "discoverydb", "-t", "st", "-p", "127.0.0.1",
        "-o", "update", "-n", "discovery.foo", "-v", "1",
    ),
    _c(
        "ddb_update_invalid_value", DISCOVERYDB, "-m", "discoverydb", "-t", "st", "-p",
        "127.0.0.1", "-o", "update", "-n", "discovery.sendtargets.auth.authmethod", "-v", "bogus",
    ),
    _c(
        "ddb_update_huge_number", DISCOVERYDB, "-m", "discoverydb", "-t", "st", "-p",
        "127.0.0.1", "-o", "update", "-n", "discovery.sendtargets.timeo.login_timeout", "-v",
        HUGE,
    ),
    _c(
        "ddb_delete", DISCOVERYDB, "-m", "discoverydb", "-t", "st", "-p", "127.0.0.1", "-o",
        "delete",
    ),
    _c(
        "ddb_delete_discovered", DISCOVERED_MIXED, "-m", "discoverydb", "-t", "st", "-p",
        "{PORTAL}", "-o", "delete",
    ),
    _c(
        "ddb_delete_unknown", DISCOVERYDB, "-m", "discoverydb", "-t", "st", "-p", "127.0.0.9",
        "-o", "delete",
    ),
    _c(
        "ddb_discover", GOLD, "-m", "discoverydb", "-t", "st", "-p", "{PORTAL}", "-D",
        host_network=True,
    ),
    _c(
        "ddb_discover_p1", GOLD, "-m", "discoverydb", "-t", "st", "-p", "{PORTAL}", "--discover",
        "-P", "1", host_network=True,
    ),
    _c(
        "ddb_discover_existing_record", ( *GOLD,
        adm("-m", "discoverydb", "-t", "st", "-p", "{PORTAL}", "-o", "new"), adm( "-m",
        "discoverydb", "-t", "st", "-p", "{PORTAL}", "-o", "update", "-n",
        "discovery.sendtargets.iscsi.MaxRecvDataSegmentLength", "-v", "65536", ), ), "-m",
        "discoverydb", "-t", "st", "-p", "{PORTAL}", "-D", host_network=True,
    ),
    _c("ddb_missing_p", DISCOVERYDB, "-m", "discoverydb", "-t", "st", "-o", "show"),
    _c("ddb_missing_t", DISCOVERYDB, "-m", "discoverydb", "-p", "127.0.0.1", "-o", "show"),
    _c("ddb_fw_without_D", EMPTY, "-m", "discoverydb", "-t", "fw"),
    _c("ddb_bad_option", EMPTY, "-m", "discoverydb", "-t", "st", "-p", "127.0.0.1", "-R"),
)

IFACE_CASES = (
    _c("iface_list", EMPTY, "-m", "iface"),
    _c("iface_list_custom", IFACES, "-m", "iface"),
    _c("iface_list_p0", IFACES, "-m", "iface", "-P", "0"),
    _c("iface_list_p1", IFACES, "-m", "iface", "-P", "1"),
    _c("iface_list_p2", IFACES, "-m", "iface", "-P", "2"),
    _c("iface_show_default", EMPTY, "-m", "iface", "-I", "default"),
    _c("iface_show_iser", EMPTY, "-m", "iface", "-I", "iser"),
    _c("iface_show_custom", IFACES, "-m", "iface", "-I", "ifx"),
    _c("iface_ipv6_list", IFACE6, "-m", "iface"),
    _c("iface_ipv6_show", IFACE6, "-m", "iface", "-I", "if6", "-o", "show"),
    _c("iface_show_unknown", IFACES, "-m", "iface", "-I", "nope"),
    _c("iface_new", EMPTY, "-m", "iface", "-I", "new1", "-o", "new"),
    _c(
        "iface_new_with_values", EMPTY, "-m", "iface", "-I", "new1", "-o", "new", "-n",
        "iface.ipaddress", "-v", "127.0.0.1",
    ),
    _c("iface_new_existing", IFACES, "-m", "iface", "-I", "ifx", "-o", "new"),
    _c("iface_new_default", EMPTY, "-m", "iface", "-I", "default", "-o", "new"),
    _c("iface_new_slash", EMPTY, "-m", "iface", "-I", "a/b", "-o", "new"),
    _c(
        "iface_update", IFACES, "-m", "iface", "-I", "ifx", "-o", "update", "-n",
        "iface.ipaddress", "-v", "127.0.0.2",
    ),
    _c(
        "iface_update_bad_key", IFACES, "-m", "iface", "-I", "ifx", "-o", "update", "-n",
        "iface.bogus", "-v", "1",
    ),
    _c(
        "iface_update_huge_number", IFACES, "-m", "iface", "-I", "ifx", "-o", "update", "-n",
        "iface.mtu", "-v", HUGE,
    ),
    _c(
        "iface_update_default", EMPTY, "-m", "iface", "-I", "default", "-o", "update", "-n",
        "iface.ipaddress", "-v", "127.0.0.2",
    ),
    _c("iface_delete", IFACES, "-m", "iface", "-I", "ifx", "-o", "delete"),
    _c("iface_delete_unbound", IFACES, "-m", "iface", "-I", "spare", "-o", "delete"),
    _c("iface_delete_iser", EMPTY, "-m", "iface", "-I", "iser", "-o", "delete"),
    _c("iface_delete_unknown", IFACES, "-m", "iface", "-I", "nope", "-o", "delete"),
    _c("iface_bad_op", IFACES, "-m", "iface", "-o", "login"),
    _c("iface_bad_option", IFACES, "-m", "iface", "-T", T1),
    _c("iface_ping_without_iface", EMPTY, "-m", "iface", "-C", "ping", "-a", "127.0.0.1"),
)

SESSION_HOST_FW_CASES = (
    _c("session_list", EMPTY, "-m", "session"),
    _c("session_list_p1", EMPTY, "-m", "session", "-P", "1"),
    _c("session_list_p3", EMPTY, "-m", "session", "-P", "3"),
    _c("session_list_p4", EMPTY, "-m", "session", "-P", "4"),
    _c("session_sid_unknown", EMPTY, "-m", "session", "-r", "1"),
    _c("session_logout_none", EMPTY, "-m", "session", "-u"),
    _c("session_rescan_none", EMPTY, "-m", "session", "-R"),
    _c("session_stats_none", EMPTY, "-m", "session", "-s"),
    _c("session_bad_option", EMPTY, "-m", "session", "-T", T1),
    _c("host_list", EMPTY, "-m", "host"),
    _c("host_list_p1", EMPTY, "-m", "host", "-P", "1"),
    _c("host_list_p5", EMPTY, "-m", "host", "-P", "5"),
    _c("host_H_max", EMPTY, "-m", "host", "-H", "4294967295"),
    _c("host_H_out_of_range", EMPTY, "-m", "host", "-H", "4294967296"),
    _c("host_H_negative", EMPTY, "-m", "host", "-H", "-1"),
    _c("host_H_huge", EMPTY, "-m", "host", "-H", HUGE),
    _c("host_H_junk", EMPTY, "-m", "host", "-H", "abc"),
    _c("print_level_huge", NODES, "-m", "node", "-P", HUGE),
    _c("host_unknown", EMPTY, "-m", "host", "-H", "5"),
    _c("host_chap_without_op", EMPTY, "-m", "host", "-H", "1", "-C", "chap"),
    _c("host_stats_unknown_host", EMPTY, "-m", "host", "-H", "1", "-C", "stats"),
    _c("fw_show", EMPTY, "-m", "fw"),
    _c("fw_login", EMPTY, "-m", "fw", "-l"),
    _c("fw_bad_option", EMPTY, "-m", "fw", "-T", T1),
)

GLOBAL_CASES = (
    _c("no_arguments", EMPTY),
    _c("bad_mode", EMPTY, "-m", "bogus"),
    _c("missing_mode_argument", EMPTY, "-m"),
    _c("unknown_long_option", EMPTY, "--bogus"),
    _c("unknown_short_option", EMPTY, "-z"),
    _c("killiscsid", EMPTY, "-k", "0"),
    _c("version", EMPTY, "-V", deliberate=_VERSION),
    _c("version_long", EMPTY, "--version", deliberate=_VERSION),
    _c("help", EMPTY, "-h", deliberate=_HELP),
    _c("help_long", EMPTY, "--help", deliberate=_HELP),
)

# fmt: on

CASES: tuple[Case, ...] = (
    *NODE_CASES,
    *DISCOVERY_CASES,
    *DISCOVERYDB_CASES,
    *IFACE_CASES,
    *SESSION_HOST_FW_CASES,
    *GLOBAL_CASES,
)
CASES_BY_NAME = {case.name: case for case in CASES}
assert len(CASES_BY_NAME) == len(CASES), "duplicate case names"

#: Cases that also run with ``--output json`` (every mode; records, lists, print
#: levels, write ops and the nothing-found paths): the document must validate against
#: docs/iscsikit-adm.schema.json and the exit code must be iscsiadm's.
JSON_CASES = (
    "node_list",
    "node_list_p1",
    "node_list_empty",
    "node_show_T",
    "node_show_chap_masked",
    "node_show_chap_S",
    "node_list_p1_empty",
    "node_new_ip_port_tpgt",
    "node_update_one",
    "node_delete_T",
    "disc_st",
    "disc_list",
    "disc_list_p1",
    "disc_show_p",
    "disc_st_no_portals",
    "ddb_show_st",
    "ddb_show_unknown",
    "ddb_new_st",
    "ddb_discover",
    "iface_list_custom",
    "iface_list_p1",
    "iface_show_custom",
    "iface_new",
    "iface_show_unknown",
    "session_list",
    "session_list_p1",
    "host_list",
    "fw_show",
)
assert all(name in CASES_BY_NAME for name in JSON_CASES)
