"""What runs inside the VM tier's guest before the tests: the initramfs's ``/init`` and
the guest's PID 1 (:mod:`iscsikit.testing.vm` boots them).

Two stages, each a short shell script kept here as text, so that an installed iscsikit
(a wheel has no loose ``.sh`` files) carries them:

``INITRAMFS_INIT``
    busybox ``sh`` as PID 1 of the initramfs.  Loads the modules listed in
    ``/modules/order`` (virtio-pci, 9p, overlay: what mounting the root needs), mounts
    the host's ``/`` read-only over virtio-9p (tag ``hostroot``), puts a tmpfs overlay
    on top and switches root into it, running ``bash <iscsikit.run>/guest-init.sh``
    (``iscsikit.run=`` on the kernel command line names the run directory).  Any failure
    powers the guest off at once: the host sees no result file and fails fast instead of
    waiting for its timeout.

``GUEST_INIT``
    bash as PID 1 of the overlay root.  Sources ``guest.env`` (written by the host:
    ``MODULES_DIR``, ``REPO``, the ``COMMAND`` array and exported variables), mounts what
    a system needs (devpts, a fresh ``/run`` hiding the host's, a scratch tmpfs as
    ``TMPDIR``), the writable results share (tag ``results``) on ``<run>/out``, binds the
    Debian kernel's modules on ``/usr/lib/modules`` with busybox as ``modprobe`` (the
    extracted package has a busybox-made ``modules.dep``, not kmod's indexes), brings
    ``lo`` up (the guest has no other network device), forgets the host's open-iscsi node
    records, starts ``systemd-udevd``, then runs ``COMMAND`` in ``REPO`` and writes
    ``uname -r`` and the exit code into the results share before powering off.

Nothing here imports anything: the guest runs the host's own programs (bash, python,
tgtd, iscsid, udev) through the read-only root.
"""

from __future__ import annotations

__all__ = ["GUEST_INIT", "INITRAMFS_INIT"]

INITRAMFS_INIT = r"""#!/bin/busybox sh
# iscsikit VM tier, stage 1 (initramfs PID 1): mount the host root, switch into it.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
fail() { echo "iscsikit-vm initramfs: $*"; poweroff -f; }
for m in $(cat /modules/order); do insmod "/modules/$m" || fail "insmod $m failed"; done
mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /lower \
    || fail "9p mount of the host root failed"
mount -t tmpfs -o size=768m,mode=755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
    || fail "overlay mount failed"
run=$(sed -n 's/.*iscsikit\.run=\([^ ]*\).*/\1/p' /proc/cmdline)
[ -f "/newroot$run/guest-init.sh" ] || fail "no $run/guest-init.sh in the host root"
for d in proc sys dev; do mount --move "/$d" "/newroot/$d"; done
exec switch_root /newroot /bin/bash "$run/guest-init.sh" "$run"
"""

GUEST_INIT = r"""#!/bin/bash
# iscsikit VM tier, stage 2 (PID 1 on the overlay root): set up, run the command, power off.
run=$1
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
exec </dev/console >/dev/console 2>&1
off() { sync; /usr/bin/busybox poweroff -f; }
fail() { echo "iscsikit-vm guest: $*"; off; }
. "$run/guest.env" || fail "cannot read $run/guest.env"
mkdir -p /dev/pts /dev/shm /scratch
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/lock
mount -t tmpfs -o mode=1777 tmpfs /scratch
export TMPDIR=/scratch
mount -t 9p -o trans=virtio,version=9p2000.L results "$run/out" || fail "results share"
mkdir -p /usr/lib/modules
mount --bind "$MODULES_DIR" /usr/lib/modules || fail "no modules at $MODULES_DIR"
rm -f /usr/sbin/modprobe && ln -s /usr/bin/busybox /usr/sbin/modprobe
echo /usr/sbin/modprobe > /proc/sys/kernel/modprobe
hostname iscsikit-vm
ip link set lo up
rm -rf /etc/iscsi/nodes /etc/iscsi/send_targets
/lib/systemd/systemd-udevd --daemon >/dev/null 2>&1 || echo "iscsikit-vm guest: no udevd"
uname -r > "$run/out/uname"
echo "iscsikit-vm: guest kernel $(uname -r), userspace up at $(cut -d' ' -f1 /proc/uptime) s"
cd "$REPO" || fail "no repository at $REPO"
"${COMMAND[@]}"
rc=$?
echo "$rc" > "$run/out/rc"
echo "iscsikit-vm: command exit code $rc at $(cut -d' ' -f1 /proc/uptime) s"
off
"""
