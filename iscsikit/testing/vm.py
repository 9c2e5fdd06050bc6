"""The VM test tier, host side: boot Debian's kernel under qemu and run ``tests/vm`` in it.

``python -m iscsikit.testing.vm [--timeout S] [--keep] [-- PYTEST-ARGS]`` (``tox -e vm``),
or ``... --run "COMMAND" [--results DIR]`` to run one command (a bench) instead of pytest:

1. **Kernel.**  Debian's ``linux-image-<version>-amd64`` package (the one
   ``linux-image-amd64`` depends on), fetched with ``apt-get download`` into the cache
   unless ``.ci/vm-deps`` already put it there, extracted with ``dpkg -x`` -- never
   installed -- and given a ``modules.dep`` by ``busybox depmod`` (the package's
   postinst would run depmod; we do not run it).
2. **Initramfs.**  A static busybox, the modules that mounting the root needs (in
   dependency order, from ``modules.dep``), ``/dev/console`` and the stage-1 init of
   :mod:`iscsikit.testing.vmguest`; written as a newc cpio by this module, with fixed
   times, so the same inputs give the same bytes.
3. **Boot.**  ``qemu-system-x86_64 -accel tcg`` (this host's KVM cannot run it), no
   network device at all (the guest has loopback only), the host's ``/`` read-only over
   virtio-9p with a tmpfs overlay, and a second, writable 9p share -- the run's ``out``
   directory -- for the results.  The guest runs the host's own programs: the caller's
   Python (so a tox venv works unchanged), tgtd, iscsid, udev.
4. **Results.**  The serial console streams to stdout (pytest's own report, kernel
   errors); afterwards the guest's ``uname -r``, every test case of the JUnit XML with its
   outcome and the exit code are printed.  A hard timeout kills qemu.  With ``--run``,
   the command's own files in ``out`` (``$ISCSIKIT_VM_OUT`` in the guest) are listed
   instead of test cases, and copied to ``--results DIR``.

The cache directory is ``$ISCSIKIT_VM_CACHE``, else ``~/.cache/iscsikit-vm`` (else
``/var/tmp/iscsikit-vm``); ``ISCSIKIT_VM_TIMEOUT`` / ``_MEM`` / ``_SMP`` tune the run.
This module never touches the host's kernel or its open-iscsi state: everything the guest
writes lands in its tmpfs overlay or in the run's ``out`` directory.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from iscsikit.testing.ibft import VM_NIC_MAC, VM_NIC_PCI_ADDR, vm_boot_table
from iscsikit.testing.vmguest import GUEST_INIT, INITRAMFS_INIT

__all__ = [
    "BOOT_MODULES",
    "GUEST_ENV_VAR",
    "Kernel",
    "TestOutcome",
    "VmConfig",
    "build_initramfs",
    "cache_dir",
    "guest_command",
    "main",
    "module_load_order",
    "newc_archive",
    "prepare_kernel",
    "read_junit",
    "run_tier",
]

#: Set to "1" inside the guest; tests/vm/conftest.py collects nothing without it.
GUEST_ENV_VAR = "ISCSIKIT_VM_GUEST"

#: What the initramfs loads to mount the root (their dependencies come along).
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")

#: What the guest init and the harness write into ``out`` themselves (not a result of
#: the command).
HARNESS_FILES = frozenset({"junit.xml", "uname", "rc"})

#: Host variables the guest's tests see too (CI's no-skip rule and the tgtd switches).
PASSED_ENV = ("CI", "ISCSIKIT_ALLOW_SKIPS", "ISCSIKIT_KEEP_TGTD")

_DEB_DIR = "debs"
#: The guest's ACPI iBFT (:func:`iscsikit.testing.ibft.vm_boot_table`), in the run directory.
IBFT_FILE = "ibft.bin"


@dataclass(frozen=True, slots=True)
class VmConfig:
    """How to run the guest; defaults from the ``ISCSIKIT_VM_*`` environment."""

    cache: Path
    timeout: float = 1200.0
    memory_mib: int = 1024
    cpus: int = 2

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> VmConfig:
        env = os.environ if environ is None else environ
        return cls(
            cache=cache_dir(env),
            timeout=float(env.get("ISCSIKIT_VM_TIMEOUT", "1200")),
            memory_mib=int(env.get("ISCSIKIT_VM_MEM", "1024")),
            cpus=int(env.get("ISCSIKIT_VM_SMP", "2")),
        )


@dataclass(frozen=True, slots=True)
class Kernel:
    """An extracted Debian kernel package: ``vmlinuz`` and its module tree."""

    version: str
    vmlinuz: Path
    modules: Path


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """One test case from the guest's JUnit XML."""

    nodeid: str
    outcome: str  # "passed", "failed", "error" or "skipped"
    seconds: float


def cache_dir(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """``$ISCSIKIT_VM_CACHE``, else ``~/.cache/iscsikit-vm``, else ``/var/tmp/iscsikit-vm``."""
    env = os.environ if environ is None else environ
    if env.get("ISCSIKIT_VM_CACHE"):
        return Path(env["ISCSIKIT_VM_CACHE"])
    home = Path(env.get("HOME") or Path.home())
    if home != Path("/") and os.access(home, os.W_OK):
        return home / ".cache" / "iscsikit-vm"
    return Path("/var/tmp/iscsikit-vm")


# -- the kernel -----------------------------------------------------------------------


def _kernel_package(debs: Path) -> str:
    """The package name: the one .ci/vm-deps recorded, else what apt resolves now."""
    recorded = debs / "PACKAGE"
    if recorded.is_file() and recorded.read_text().strip():
        return recorded.read_text().strip()
    out = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for line in out.splitlines():
        dep = line.strip().removeprefix("Depends: ")
        if dep.startswith("linux-image-") and dep[len("linux-image-") :][:1].isdigit():
            return dep
    raise RuntimeError("apt knows no linux-image-amd64 (run .ci/vm-deps or apt-get update)")


def prepare_kernel(cache: Path) -> Kernel:
    """Download (once) and extract (once) Debian's kernel package under ``cache``."""
    debs = cache / _DEB_DIR
    debs.mkdir(parents=True, exist_ok=True)
    package = _kernel_package(debs)
    version = package.removeprefix("linux-image-")
    root = cache / "kernel" / version
    if not (root / "boot" / f"vmlinuz-{version}").is_file():
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            subprocess.run(["apt-get", "download", "-q", package], cwd=debs, check=True)
            found = sorted(debs.glob(f"{package}_*.deb"))
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=cache))
        subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(staging)], check=True)
        moddir = _modules_root(staging, version)
        subprocess.run(
            ["busybox", "depmod", "-b", str(moddir.parents[2]), version],
            check=True,
        )
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        staging.rename(root)  # atomic: a half-extracted tree is never taken for done
    return Kernel(version, root / "boot" / f"vmlinuz-{version}", _modules_root(root, version))


def _modules_root(root: Path, version: str) -> Path:
    for lib in ("lib", "usr/lib"):
        if (root / lib / "modules" / version).is_dir():
            return root / lib / "modules" / version
    raise RuntimeError(f"no modules for {version} under {root}")


def module_load_order(modules: Path, wanted: Iterable[str]) -> list[Path]:
    """The module files to insmod for ``wanted``, dependencies first (from modules.dep);
    modules built into the kernel (modules.builtin) need no file and are left out."""

    def name_of(path: str) -> str:
        base = path.rsplit("/", 1)[-1]
        return base.split(".ko", 1)[0].replace("-", "_")

    deps: dict[str, tuple[str, list[str]]] = {}
    for line in (modules / "modules.dep").read_text().splitlines():
        target, _, rest = line.partition(":")
        if target:
            deps[name_of(target)] = (target, rest.split())
    builtin_file = modules / "modules.builtin"
    builtin = (
        {name_of(p) for p in builtin_file.read_text().split()} if builtin_file.exists() else set()
    )
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name in builtin:
            return
        seen.add(name)
        if name not in deps:
            raise RuntimeError(f"kernel module {name} not in {modules}/modules.dep")
        path, needs = deps[name]
        for dep in needs:
            visit(name_of(dep))
        order.append(Path(path) if Path(path).is_absolute() else modules / path)

    for name in wanted:
        visit(name.replace("-", "_"))
    return order


# -- the initramfs --------------------------------------------------------------------


def newc_archive(entries: Sequence[tuple[str, int, bytes, tuple[int, int]]]) -> bytes:
    """A cpio "newc" archive of ``(name, mode, data, (rdev major, minor))`` entries, all
    owned by root with time 0 (the kernel's initramfs format, Documentation/driver-api/
    early-userspace/buffer-format.rst)."""
    out = io.BytesIO()

    def pad() -> None:
        out.write(b"\0" * (-out.tell() % 4))

    for ino, (name, mode, data, (major, minor)) in enumerate(
        [*entries, ("TRAILER!!!", 0, b"", (0, 0))], start=1
    ):
        raw = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, major, minor, len(raw), 0)
        out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + raw)
        pad()
        out.write(data)
        pad()
    return out.getvalue()


def build_initramfs(kernel: Kernel, cache: Path) -> Path:
    """The gzipped initramfs for ``kernel`` (cached by content)."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise RuntimeError("busybox not found (Debian busybox-static; run .ci/vm-deps)")
    modules = module_load_order(kernel.modules, BOOT_MODULES)
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = [
        *((d, 0o40755, b"", (0, 0)) for d in ("bin", "dev", "proc", "sys")),
        ("dev/console", 0o20600, b"", (5, 1)),
        ("modules", 0o40755, b"", (0, 0)),
        ("bin/busybox", 0o100755, Path(busybox).read_bytes(), (0, 0)),
        ("init", 0o100755, INITRAMFS_INIT.encode(), (0, 0)),
        ("modules/order", 0o100644, "".join(f"{m.name}\n" for m in modules).encode(), (0, 0)),
    ]
    entries += [(f"modules/{m.name}", 0o100644, m.read_bytes(), (0, 0)) for m in modules]
    data = gzip.compress(newc_archive(entries), compresslevel=1, mtime=0)
    path = cache / f"initramfs-{kernel.version}.cpio.gz"
    if not path.exists() or path.read_bytes() != data:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


# -- the run --------------------------------------------------------------------------


def guest_command(out: Path, pytest_args: Sequence[str], run: str | None = None) -> list[str]:
    """What the guest runs in the checkout: pytest over tests/vm (or the test files
    named in ``pytest_args``), or ``bash -c RUN`` when a command is given."""
    if run is not None:
        return ["bash", "-c", run]
    return [
        sys.executable,
        *("-m", "pytest", "-p", "no:cacheprovider", "-v", "-rA", "--color=no"),
        f"--junitxml={out / 'junit.xml'}",
        *(() if _names_tests(pytest_args) else ("tests/vm",)),
        *pytest_args,
    ]


def _guest_env(
    run: Path, kernel: Kernel, repo: Path, command: Sequence[str], *, own_command: bool = False
) -> str:
    lines = [
        f"MODULES_DIR={shlex.quote(str(kernel.modules.parent))}",
        f"REPO={shlex.quote(str(repo))}",
        f"COMMAND=({' '.join(shlex.quote(c) for c in command)})",
        f"export {GUEST_ENV_VAR}=1 ISCSIKIT_VM_OUT={shlex.quote(str(run / 'out'))}",
        "export PYTHONDONTWRITEBYTECODE=1",
    ]
    if own_command:
        # `python`, `iscsikit-adm`... of the caller's environment first (a tox venv, a
        # pyenv version), as pytest runs with sys.executable; output unbuffered.
        bindir = shlex.quote(str(Path(sys.executable).parent))
        lines.append(f'export PATH={bindir}:"$PATH" PYTHONUNBUFFERED=1')
    lines += [f"export {k}={shlex.quote(os.environ[k])}" for k in PASSED_ENV if k in os.environ]
    return "\n".join(lines) + "\n"


def qemu_argv(config: VmConfig, kernel: Kernel, initrd: Path, run: Path) -> list[str]:
    """The qemu command line: TCG, no network (one NIC without a backend, for the iBFT),
    host root read-only + the results share."""
    for path in (run, Path("/")):
        if "," in str(path):
            raise ValueError(f"qemu cannot share a path with a comma: {path}")
    append = f"console=ttyS0 panic=-1 quiet loglevel=3 iscsikit.run={run}"
    return [
        "qemu-system-x86_64",
        *("-accel", "tcg,thread=multi", "-cpu", "max"),
        *("-m", str(config.memory_mib), "-smp", str(config.cpus)),
        *("-nodefaults", "-no-user-config", "-display", "none", "-nic", "none"),
        *("-no-reboot", "-serial", "stdio", "-monitor", "none"),
        *("-kernel", str(kernel.vmlinuz), "-initrd", str(initrd), "-append", append),
        "-virtfs",
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        "-virtfs",
        f"local,path={run / 'out'},mount_tag=results,security_model=none",
        # Boot firmware for tests/vm/test_ibft_boot.py: an iBFT naming a NIC with no backend.
        *("-acpitable", f"file={run / IBFT_FILE}"),
        *("-device", f"virtio-net-pci,addr={VM_NIC_PCI_ADDR},mac={VM_NIC_MAC}"),
    ]


def _stream(source: io.BufferedReader, log: io.BufferedWriter) -> None:
    """Copy the serial console to stdout and to the log, line by line, without CRs."""
    for line in iter(source.readline, b""):
        clean = line.replace(b"\r", b"")
        log.write(clean)
        sys.stdout.buffer.write(clean)
        sys.stdout.buffer.flush()


def read_junit(path: Path) -> list[TestOutcome]:
    """The test cases of a pytest JUnit XML file, in order."""
    outcomes = []
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        kinds = {child.tag for child in case}
        outcome = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
        outcomes.append(
            TestOutcome(
                f"{module}.py::{case.get('name', '')}",
                {"failure": "failed"}.get(outcome, outcome),
                float(case.get("time", "0")),
            )
        )
    return outcomes


def run_tier(
    config: VmConfig,
    repo: Path,
    pytest_args: Sequence[str],
    *,
    keep: bool,
    run_command: str | None = None,
    results: Path | None = None,
) -> int:
    """Boot the guest, run tests/vm there (or ``run_command``), print the results; the
    guest command's exit code (124 when the hard timeout fired, 1 when the guest left
    no exit code).  The command's own files in ``out`` are copied to ``results``."""
    started = time.monotonic()
    config.cache.mkdir(parents=True, exist_ok=True)
    kernel = prepare_kernel(config.cache)
    initrd = build_initramfs(kernel, config.cache)
    runs = config.cache / "runs"
    runs.mkdir(exist_ok=True)
    run = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
    out = run / "out"
    out.mkdir()
    command = guest_command(out, pytest_args, run_command)
    (run / "guest-init.sh").write_text(GUEST_INIT)
    (run / IBFT_FILE).write_bytes(vm_boot_table())
    own = run_command is not None
    (run / "guest.env").write_text(_guest_env(run, kernel, repo, command, own_command=own))
    print(f"iscsikit-vm: kernel {kernel.version} (Debian), run directory {run}", flush=True)
    with (
        open(run / "console.log", "wb") as log,
        subprocess.Popen(
            qemu_argv(config, kernel, initrd, run),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ) as qemu,
    ):
        assert qemu.stdout is not None
        reader = threading.Thread(target=_stream, args=(qemu.stdout, log), daemon=True)
        reader.start()
        try:
            qemu.wait(timeout=config.timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            qemu.kill()
            qemu.wait()
            timed_out = True
        reader.join(timeout=10)
    produced = _results(out, results) if own else []
    rc = _report(out, timed_out, config.timeout, time.monotonic() - started, tests=not own)
    if produced and results is None:
        keep = True  # the command's results live only in the run directory
    if rc == 0 and not keep:
        shutil.rmtree(run, ignore_errors=True)
    else:
        print(f"iscsikit-vm: kept {run} (console.log, out/)", flush=True)
    return rc


def _results(out: Path, dest: Path | None) -> list[Path]:
    """List (and copy to ``dest``) the files the guest command wrote into ``out``."""
    produced = sorted(
        p for p in out.rglob("*") if p.is_file() and str(p.relative_to(out)) not in HARNESS_FILES
    )
    for path in produced:
        rel = path.relative_to(out)
        where = ""
        if dest is not None:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / rel)
            where = f" -> {dest / rel}"
        print(f"iscsikit-vm: result {rel} ({path.stat().st_size} bytes){where}", flush=True)
    return produced


def _report(
    out: Path, timed_out: bool, timeout: float, elapsed: float, *, tests: bool = True
) -> int:
    uname = (out / "uname").read_text().strip() if (out / "uname").exists() else "unknown"
    print(f"iscsikit-vm: guest kernel (uname -r): {uname}")
    if tests and (out / "junit.xml").exists():
        cases = read_junit(out / "junit.xml")
        print(f"iscsikit-vm: {len(cases)} tests ran in the guest:")
        for case in cases:
            print(f"iscsikit-vm:   {case.outcome.upper():8} {case.nodeid} ({case.seconds:.1f} s)")
    elif tests:
        print("iscsikit-vm: the guest wrote no JUnit XML")
    if timed_out:
        print(f"iscsikit-vm: TIMEOUT after {timeout:.0f} s; qemu killed", flush=True)
        return 124
    rc_file = out / "rc"
    rc = int(rc_file.read_text().strip() or 1) if rc_file.exists() else 1
    print(f"iscsikit-vm: guest exit code {rc}, {elapsed:.0f} s in all", flush=True)
    return rc


def _names_tests(pytest_args: Sequence[str]) -> bool:
    """Whether the guest's pytest arguments name test files or directories of their own
    (then only those run, not the whole of tests/vm)."""
    return any(a.startswith("tests/vm/") for a in pytest_args)


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """The harness's own options, and everything from the first argument it does not
    know, in order, for the guest's pytest (``-k login -x``; a ``--`` before it is
    dropped)."""
    given = list(argv)
    own: list[str] = []
    valued = ("--repo", "--timeout", "--run", "--results")
    while given and (given[0] in (*valued, "--keep", "-h", "--help") or _is_joined(given[0])):
        own.append(given.pop(0))
        if own[-1] in valued and given:
            own.append(given.pop(0))
    if given[:1] == ["--"]:
        given.pop(0)
    return own, given


def _is_joined(arg: str) -> bool:
    """``--run=CMD`` / ``--results=DIR`` (a harness option and its value in one word)."""
    return arg.startswith(("--run=", "--results="))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m iscsikit.testing.vm``: run the VM tier from a repository checkout."""
    parser = argparse.ArgumentParser(
        prog="python -m iscsikit.testing.vm",
        description="Boot Debian's kernel under qemu (TCG) and run tests/vm inside it.",
    )
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="checkout (default .)")
    parser.add_argument("--timeout", type=float, help="hard limit in seconds for the guest")
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    parser.add_argument(
        "--run",
        metavar="COMMAND",
        help="run this shell command in the checkout instead of pytest (a bench); "
        "$ISCSIKIT_VM_OUT is a writable directory whose files come back",
    )
    parser.add_argument(
        "--results", type=Path, metavar="DIR", help="with --run: copy the command's files here"
    )
    parser.add_argument("pytest_args", nargs="*", help="passed on to the guest's pytest")
    own, guest = split_args(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(own)
    args.pytest_args = guest
    if args.run is not None and guest:
        parser.error(f"--run takes no pytest arguments (got {shlex.join(guest)})")
    if args.results is not None and args.run is None:
        parser.error("--results needs --run")
    repo = args.repo.resolve()
    if not (repo / "tests" / "vm").is_dir():
        parser.error(f"{repo} has no tests/vm (run from the repository root or give --repo)")
    config = VmConfig.from_env()
    if args.timeout is not None:
        config = VmConfig(config.cache, args.timeout, config.memory_mib, config.cpus)
    results = args.results.resolve() if args.results is not None else None
    return run_tier(
        config, repo, args.pytest_args, keep=args.keep, run_command=args.run, results=results
    )


if __name__ == "__main__":
    sys.exit(main())
