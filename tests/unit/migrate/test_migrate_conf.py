"""The iscsi.conf reader against linux-iscsi's rules.

Where each rule comes from: iscsi.conf(5) of linux-iscsi 4.0.x (SLES9, manpag.es/SLES9/
5+iscsi.conf: categories A..P, "DiscoveryAddress ... must start in the first column",
TargetIpAddr a synonym, Username/Password synonyms of Outgoing*, times as 300s / 5m / 1h,
comments are lines beginning with '#') and the driver's reader iscsi-config.c
(update_iscsi_config: strncasecmp "Key=" prefixes, indentation with a tab counted 8,
``indent <= entry_indent`` ends a section, sections memcpy the global defaults of their
time, entry_*_options decide which section keeps which category, parse_time /
parse_number (strtol base 0) / parse_boolean / parse_quoted_string, digest words).
"""

from __future__ import annotations

import ipaddress

from iscsikit.migrate.conf import parse_conf, parse_time

# Built from the man page's parameter list: every category, global and per section.
SAMPLE = """\
# linux-iscsi /etc/iscsi.conf
   # an indented comment
username=joe
OutgoingPassword="pass word#1"
IncomingUsername=tgtuser
PasswordIn=tgtpass
LoginTimeout=2m
AuthTimeout=50s
IdleTimeout=1h
PingTimeout=0x0a
ConnFailTimeout=300
AbortTimeout=012
ResetTimeout=40
InitialR2T=yes
ImmediateData=No
MaxRecvDataSegmentLength=65536
FirstBurstLength=131072
MaxBurstLength=262144
HeaderDigest=prefer-on
DataDigest=CRC32C
TCPWindowSize=131072
Continuous=no
PortalFailover=yes
PreferredPortal=192.0.2.10:3260
PreferredSubnet=192.0.2.0/24
Multipath=portal
DiscoveryAddress=192.0.2.10
    Continuous=yes
    LoginTimeout=20
TargetIpAddr=192.0.2.20:3270
\tOutgoingUsername=other
\tOutgoingPassword=otherpass
TargetName=iqn.2001-04.com.example:disk1
    HeaderDigest=never
    Enabled=no
    MaxRecvDataSegmentLength=8192
Subnet=198.51.100.0/24
    AbortTimeout=5
    TCPWindowSize=65536
Address=203.0.113.7
    ResetTimeout=3m
HeaderDigest=always
"""


def test_globals_every_category_and_value_syntax() -> None:
    conf = parse_conf(SAMPLE, "/etc/iscsi.conf")
    g = {k: s.value for k, s in conf.globals.items()}
    assert g["OutgoingUsername"] == "joe"  # key case-insensitive, Username synonym
    assert g["OutgoingPassword"] == "pass word#1"  # quoted: blanks and '#' kept
    assert g["IncomingUsername"] == "tgtuser"
    assert g["IncomingPassword"] == "tgtpass"  # PasswordIn synonym
    assert g["LoginTimeout"] == 120  # 2m
    assert g["AuthTimeout"] == 50  # 50s
    assert g["IdleTimeout"] == 3600  # 1h
    assert g["PingTimeout"] == 10  # strtol base 0: hex
    assert g["AbortTimeout"] == 10  # strtol base 0: octal 012
    assert g["ConnFailTimeout"] == 300
    assert g["InitialR2T"] == 1 and g["ImmediateData"] == 0
    assert g["MaxRecvDataSegmentLength"] == 65536
    assert g["HeaderDigest"] == "always"  # the last global line (after the sections) wins
    assert g["DataDigest"] == "always"  # crc32c is a synonym of always
    assert g["PreferredSubnet"] == "192.0.2.0/24"
    assert conf.problems == []


def test_sections_capture_the_globals_of_their_time() -> None:
    conf = parse_conf(SAMPLE)
    disc1, disc2, target, subnet, host = conf.sections
    assert (disc1.kind, disc1.address, disc1.port) == ("discovery", "192.0.2.10", 3260)
    assert (disc2.address, disc2.port) == ("192.0.2.20", 3270)  # TargetIpAddr synonym
    eff1 = {k: s.value for k, s in disc1.effective().items()}
    # A discovery section keeps CHAP, connection timeouts and Continuous only.
    assert eff1["OutgoingUsername"] == "joe" and eff1["IncomingPassword"] == "tgtpass"
    assert eff1["LoginTimeout"] == 20 and eff1["AuthTimeout"] == 50
    assert eff1["Continuous"] == 1
    assert "HeaderDigest" not in eff1 and "AbortTimeout" not in eff1
    eff2 = {k: s.value for k, s in disc2.effective().items()}
    assert eff2["OutgoingUsername"] == "other" and eff2["Continuous"] == 0  # tab indent
    teff = {k: s.value for k, s in target.effective().items()}
    assert target.target == "iqn.2001-04.com.example:disk1"
    # Captured prefer-on, overridden by its own line; the later global 'always' is not seen.
    assert teff["HeaderDigest"] == "never" and teff["Enabled"] == 0
    assert teff["DataDigest"] == "always" and teff["MaxRecvDataSegmentLength"] == 8192
    assert subnet.network == ipaddress.IPv4Network("198.51.100.0/24")
    seff = {k: s.value for k, s in subnet.effective().items()}
    assert seff["AbortTimeout"] == 5 and seff["TCPWindowSize"] == 65536
    assert "HeaderDigest" not in seff  # a Subnet keeps no iSCSI parameters
    assert host.network == ipaddress.IPv4Network("203.0.113.7/32")  # Address=, no mask
    assert [s.value for s in host.own] == [180]


def test_dedent_ends_a_section() -> None:
    conf = parse_conf("DiscoveryAddress=10.0.0.1\n  LoginTimeout=5\nLoginTimeout=7\n")
    (disc,) = conf.sections
    assert [s.value for s in disc.own] == [5]
    assert conf.globals["LoginTimeout"].value == 7


def test_bad_and_unknown_lines_are_reported_with_file_and_line() -> None:
    text = (
        "DiscoveryAddress=10.0.0.1\n"  # 1
        "    HeaderDigest=always\n"  # 2 not kept by a discovery section
        "Subnet=10.0.0.0/8\n"  # 3
        "    InitialR2T=yes\n"  # 4 not kept by a subnet
        "    Username=x\n"  # 5 not kept by a subnet
        "LoginTimeout=5x\n"  # 6 bad time
        "HeaderDigest=sometimes\n"  # 7 bad digest
        "DataDigest=always # why\n"  # 8 a digest is compared whole
        "MaxBurstLength = 4096\n"  # 9 blanks around '='
        "FooBar=1\n"  # 10 unknown key
        "just words\n"  # 11
        "Subnet=10.0.0.300/8\n"  # 12 bogus subnet
        "DiscoveryAddress=\n"  # 13 no address
        "InitialR2T=maybe\n"  # 14 bad boolean
    )
    conf = parse_conf(text, "/etc/iscsi.conf")
    got = {(p.line, p.kind) for p in conf.problems}
    assert got == {
        (2, "error"),
        (4, "error"),
        (5, "error"),
        (6, "error"),
        (7, "error"),
        (8, "error"),
        (9, "unknown"),
        (10, "unknown"),
        (11, "unknown"),
        (12, "error"),
        (13, "error"),
        (14, "error"),
    }
    assert str(conf.problems[0]).startswith("/etc/iscsi.conf:2: HeaderDigest does not apply")
    assert "no blanks" in next(p.message for p in conf.problems if p.line == 9)
    # Rejected lines change nothing.
    assert conf.globals == {}
    assert [s.own for s in conf.sections] == [[], []]


def test_numbers_stop_at_the_first_blank_and_continuous_falls_through() -> None:
    conf = parse_conf(
        "LoginTimeout=15 # seconds\n"
        "TargetName=iqn.x:y\n"
        "    Continuous=yes\n"  # the driver's else-branch: changes the global default
        "    AuthTimeout=1m\n"
    )
    assert conf.globals["LoginTimeout"].value == 15
    assert conf.globals["Continuous"].value == 1
    assert [s.key for s in conf.sections[0].own] == ["AuthTimeout"]


def test_parse_time_suffixes() -> None:
    assert [parse_time(t) for t in ("300s", "5m", "1h", "45", "", "-1", "m", "1d")] == [
        300,
        300,
        3600,
        45,
        None,
        None,
        None,
        None,
    ]


def test_discovery_addresses() -> None:
    from iscsikit.migrate.mapping import build_plan

    conf = parse_conf(
        "DiscoveryAddress=192.0.2.1:3261trailing\n"  # the driver keeps the leading digits
        "DiscoveryAddress=[2001:db8::1]:3270\n"
        "DiscoveryAddress=host.example\n"
        "DiscoveryAddress=x/y\n"  # no record can have this name
        "    Username=" + "u" * 300 + "\n"
    )
    plan = build_plan(conf)
    got = [(r.address, r.port) for _, r in plan.discoveries]
    assert got == [("192.0.2.1", 3261), ("2001:db8::1", 3270), ("host.example", 3260)]
    assert [p.line for p in plan.problems] == [4]
