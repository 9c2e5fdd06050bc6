"""Regenerate the golden record files beside this script with the real iscsiadm 2.1.8.

    python tests/unit/records/golden/regenerate.py tests/unit/records/golden

Runs iscsiadm through :class:`iscsikit.testing.oracle.Oracle` (root, a private mount and
network namespace, a fake iscsid answering config queries) on a scratch database and
copies the files it wrote.  Provenance of every golden file: the commands below.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from iscsikit.testing.oracle import Oracle

T = "iqn.2001-04.com.example:storage.disk1"
IFACE_V4 = {
    "iface.net_ifacename": "eth7",
    "iface.ipaddress": "10.1.2.3",
    "iface.prefix_len": "24",
    "iface.initiatorname": "iqn.2004-10.com.example:host a",
    "iface.vlan_id": "12",
    "iface.mtu": "9000",
    "iface.bootproto": "static",
    "iface.subnet_mask": "255.255.255.0",
    "iface.gateway": "10.1.2.254",
    "iface.tos": "3",
    "iface.header_digest": "enable",
    "iface.max_burst_len": "262144",
}
IFACE_V6 = {
    "iface.ipaddress": "fd00::5",
    "iface.ipv6_autocfg": "nd",
    "iface.ipv6_router": "fd00::1",
    "iface.hop_limit": "64",
    "iface.flow_label": "7",
    "iface.net_ifacename": "eth1",
}
NODE = {
    "node.startup": "automatic",
    "node.session.auth.authmethod": "CHAP",
    "node.session.auth.username": "user name",
    "node.session.auth.password": "pa ss#word = x",
    "node.session.auth.chap_algs": "SHA256,MD5",
    "node.conn[0].iscsi.HeaderDigest": "CRC32C,None",
    "node.session.cmds_max": "64",
    "node.session.timeo.replacement_timeout": "-1",
}
DISCOVERY = {
    "discovery.sendtargets.auth.authmethod": "CHAP",
    "discovery.sendtargets.auth.username": "disc user",
    "discovery.sendtargets.auth.password": "s3cr#t",
    "discovery.sendtargets.use_discoveryd": "Yes",
}


def main(out: Path) -> None:
    base = Path("/tmp/golden-oracle")
    shutil.rmtree(base, ignore_errors=True)
    oracle = Oracle(base)

    def run(*args: str) -> None:
        result = oracle.run(*args)
        if result.returncode != 0:
            raise SystemExit(f"iscsiadm {' '.join(args)}: {result.stderr}")

    for name, values in (("ifv4", IFACE_V4), ("ifx_ipv6", IFACE_V6)):
        run("-m", "iface", "-I", name, "-o", "new")
        for key, value in values.items():
            run("-m", "iface", "-I", name, "-o", "update", "-n", key, "-v", value)
    portal = ("-p", "192.168.0.10:3260,1", "-I", "ifv4")
    run("-m", "node", "-o", "new", "-T", T, *portal)
    for key, value in NODE.items():
        run("-m", "node", "-T", T, *portal, "-o", "update", "-n", key, "-v", value)
    run("-m", "node", "-o", "new", "-T", T, "-p", "[fd00::10]:3260,2", "-I", "ifx_ipv6")
    run("-m", "node", "-o", "new", "-T", "iqn.2001-04.com.example:old", "-p", "192.168.0.11:3260")
    st = ("-m", "discoverydb", "-t", "st", "-p", "192.168.0.10:3260")
    run(*st, "-o", "new")
    for key, value in DISCOVERY.items():
        run(*st, "-o", "update", "-n", key, "-v", value)
    run("-m", "discoverydb", "-t", "isns", "-p", "192.168.0.20", "-o", "new")

    db = oracle.db_root
    copies = {
        "node_v4.txt": db / "nodes" / T / "192.168.0.10,3260,1" / "ifv4",
        "node_v6.txt": db / "nodes" / T / "fd00::10,3260,2" / "ifx_ipv6",
        "node_oldstyle.txt": db / "nodes" / "iqn.2001-04.com.example:old" / "192.168.0.11,3260",
        "iface_v4.txt": db / "ifaces" / "ifv4",
        "iface_v6.txt": db / "ifaces" / "ifx_ipv6",
        "st_config.txt": db / "send_targets" / "192.168.0.10,3260" / "st_config",
        "isns_config.txt": db / "isns" / "192.168.0.20,3205" / "isns_config",
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, src in copies.items():
        shutil.copyfile(src, out / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
