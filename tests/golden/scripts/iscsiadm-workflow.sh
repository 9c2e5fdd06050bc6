#!/bin/bash
# iscsiadm-workflow.sh PORTAL -- an ordinary administration script written for iscsiadm:
# discover the targets behind a portal, make every discovered node log in at boot
# (node.startup = automatic), list and check the records, then delete them again.
# Every step checks iscsiadm's exit code, as a careful script does.
#
# The command comes from $ISCSIADM (default: iscsiadm) and is word-split on purpose, so
# ISCSIADM="python3 -m iscsikit" works. tests/golden/test_iscsiadm_script.py runs this
# script unchanged with iscsiadm and with iscsikit-adm: same output, both succeed.
set -u

ISCSIADM=${ISCSIADM:-iscsiadm}
PORTAL=${1:?usage: iscsiadm-workflow.sh PORTAL}

die() {
    echo "FAILED: $*" >&2
    exit 1
}

iscsiadm() {
    # shellcheck disable=SC2086  # $ISCSIADM may be a command with arguments
    command $ISCSIADM "$@"
}

echo "# discovering the targets at $PORTAL"
discovered=$(iscsiadm -m discovery -t sendtargets -p "$PORTAL") || die "discovery (exit $?)"
[ -n "$discovered" ] || die "no targets at $PORTAL"
printf '%s\n' "$discovered"

echo "# logging in at boot: node.startup = automatic"
count=0
while read -r portal target; do
    address=${portal%,*} # 127.0.0.1:3260,1 -> 127.0.0.1:3260
    iscsiadm -m node -T "$target" -p "$address" -o update -n node.startup -v automatic ||
        die "updating $target at $address (exit $?)"
    count=$((count + 1))
done <<<"$discovered"
echo "updated $count node record(s)"

echo "# node records"
iscsiadm -m node || die "listing the nodes (exit $?)"
iscsiadm -m node -P 1 || die "listing the nodes as a tree (exit $?)"

first=$(printf '%s\n' "$discovered" | head -n 1)
first_target=${first#* }
first_portal=${first%% *}
first_portal=${first_portal%,*}
echo "# the record of $first_target"
record=$(iscsiadm -m node -T "$first_target" -p "$first_portal") || die "show (exit $?)"
printf '%s\n' "$record" |
    grep -E '^(node\.name|node\.tpgt|node\.startup|iface\.iscsi_ifacename|node\.conn\[0\]\.(address|port|startup)) = '
startup=$(printf '%s\n' "$record" | sed -n 's/^node\.startup = //p')
[ "$startup" = automatic ] || die "node.startup is '$startup', not automatic"

echo "# deleting the node records"
iscsiadm -m node -o delete || die "delete (exit $?)"
if iscsiadm -m node >/dev/null 2>&1; then
    die "node records are left after the delete"
else
    rc=$?
fi
[ "$rc" -eq 21 ] || die "listing no records exited $rc, not 21 (no objects found)"
echo "# done: discovered $count target(s), no node records left"
