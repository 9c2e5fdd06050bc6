"""``iscsikit-ls``: list targets and their LUNs, like libiscsi's ``iscsi-ls``.

``iscsikit-ls [-s] [-i INITIATOR] [--json] URL`` where URL is ``iscsi://host[:port]``
(SendTargets discovery, then every target), or names one target
(``iscsi://host/iqn...``; a trailing ``/lun`` is accepted and ignored).  ``-s`` logs in
to each target and lists its LUNs in ``iscsi-ls -s``'s format::

    Target:iqn.2024-01.example:disk Portal:127.0.0.1:3260,1
    Lun:0    Type:STORAGE_ARRAY_CONTROLLER
    Lun:1    Type:DIRECT_ACCESS (Size:1G)

with ``-v``, also vendor / product / revision, serial number and designators.  Sizes
are exact binary multiples (iscsi-ls prints ``(last LBA * block size)`` truncated).
A target that fails is listed with its error and the exit code is the first failure's;
other failures end the command through :func:`iscsikit.cli.console.console_main`
(bad arguments: 7, usage on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

import iscsikit
from iscsikit.cli.console import ArgumentParser, console_main
from iscsikit.errors import InvalidParameterError, IscsiError
from iscsikit.lun.lun import run_blocking
from iscsikit.lun.scan import LunInfo, scan
from iscsikit.lun.url import DEFAULT_PORT, chap_password_from_env, parse_iscsi_url
from iscsikit.proto.address import Portal, parse_portal

PROG = "iscsikit-ls"


def _size(n: int) -> str:
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f}{unit}"
    return f"{n}B"


def _split_url(url: str) -> tuple[Portal, str | None, str | None, str | None]:
    """(portal, target, user, password) from an iscsi:// URL that may stop early."""
    if url.count("/") >= 4:
        parsed = parse_iscsi_url(url if url.rsplit("/", 1)[-1].isdigit() else url + "/0")
        return parsed.portal, parsed.target, parsed.user, parsed.password
    if not url.startswith("iscsi://"):
        raise InvalidParameterError(f"invalid iSCSI URL {url!r}")
    rest = url[len("iscsi://") :].rstrip("/")
    target = None
    if "/" in rest:
        rest, target = rest.split("/", 1)
    user = password = None
    if "@" in rest:
        creds, rest = rest.rsplit("@", 1)
        user, percent, password = creds.partition("%")
        if not percent:
            password = chap_password_from_env(url, user)
    return parse_portal(rest, default_port=DEFAULT_PORT), target or None, user, password


def _print_luns(luns: list[LunInfo], verbose: bool, out: TextIO) -> None:
    for info in luns:
        size = f" (Size:{_size(info.size)})" if info.size is not None else ""
        print(f"Lun:{info.lun:<4} Type:{info.type_name}{size}", file=out)
        if verbose:
            print(f"    Vendor:{info.vendor} Product:{info.product} Rev:{info.revision}", file=out)
            if info.serial:
                print(f"    Serial:{info.serial}", file=out)
            for ident in info.identifiers:
                print(f"    Designator:{ident}", file=out)
        if info.error:
            print(f"    Error:{info.error}", file=out)


def run(args: argparse.Namespace, out: TextIO) -> int:
    portal, only, user, password = _split_url(args.url)
    chap = iscsikit.Chap(user, password or "") if user else None
    targets: list[tuple[str, str, int | None]]
    if only is None:
        found = iscsikit.discover(portal, chap=chap, initiator_name=args.initiator_name)
        targets = [(t.name, t.portal, t.tpgt) for t in found]
    else:
        targets = [(only, str(portal), None)]  # tpgt unknown without discovery
    report: list[dict[str, object]] = []
    status = 0
    for name, where, tpgt in targets:
        entry: dict[str, object] = {"target": name, "portal": where, "tpgt": tpgt}
        report.append(entry)
        if not args.json:
            tag = f",{tpgt}" if tpgt is not None else ""
            print(f"Target:{name} Portal:{where}{tag}", file=out)
        if not args.show_luns:
            continue
        try:
            with iscsikit.login(
                where, name, chap=chap, initiator_name=args.initiator_name, retries=0
            ) as session:
                channel = session.transport_session.command_channel()
                luns = run_blocking(channel, scan())
        except IscsiError as exc:
            entry["error"] = str(exc)
            status = status or int(exc.code)
            if not args.json:
                print(f"    Error:{exc}", file=out)
            continue
        entry["luns"] = [info.to_dict() for info in luns]
        if not args.json:
            _print_luns(luns, args.verbose, out)
    if args.json:
        json.dump({"version": 1, "targets": report}, out, indent=2)
        out.write("\n")
    return status


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description="List iSCSI targets and their LUNs.")
    parser.add_argument("url", help="iscsi://[user[%%password]@]host[:port][/target-iqn]")
    parser.add_argument("-s", "--show-luns", action="store_true", help="log in and list LUNs")
    parser.add_argument("-v", "--verbose", action="store_true", help="vendor, serial, IDs")
    parser.add_argument("-i", "--initiator-name", default=None, help="initiator IQN")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Run the tool; returns the exit code (0, 7 for bad arguments, else the error's code)."""
    return console_main(PROG, lambda: run(build_parser().parse_args(argv), out or sys.stdout))


if __name__ == "__main__":
    sys.exit(main())
