"""The VM tier's host-side pieces that need no VM: the initramfs archive, module order
from modules.dep, JUnit results, the qemu command line, ``--run`` (a command instead of
pytest) and its results (iscsikit.testing.vm)."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from iscsikit.testing.vm import (
    Kernel,
    VmConfig,
    _guest_env,
    _results,
    build_initramfs,
    cache_dir,
    guest_command,
    main,
    module_load_order,
    newc_archive,
    qemu_argv,
    read_junit,
    split_args,
)


def parse_newc(data: bytes) -> list[tuple[str, int, bytes, tuple[int, int]]]:
    """An independent reader of the newc format (magic, 13 hex fields, name, data)."""
    entries, pos = [], 0
    while True:
        assert data[pos : pos + 6] == b"070701"
        f = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        body = data[pos : pos + size]
        pos = (pos + size + 3) & ~3
        if name == "TRAILER!!!":
            assert pos == len(data)
            return entries
        entries.append((name, mode, body, (rmaj, rmin)))


def test_newc_archive_round_trips() -> None:
    entries = [
        ("dev", 0o40755, b"", (0, 0)),
        ("dev/console", 0o20600, b"", (5, 1)),
        ("init", 0o100755, b"#!/bin/sh\necho odd-length\n", (0, 0)),
        ("x", 0o100644, b"12345", (0, 0)),
    ]
    data = newc_archive(entries)
    assert len(data) % 4 == 0
    assert parse_newc(data) == entries
    assert newc_archive(entries) == data  # no clock, no inode numbers from the disk


def write_modules(tmp_path: Path) -> Path:
    mods = tmp_path / "lib/modules/6.1.0-1-amd64"
    mods.mkdir(parents=True)
    (mods / "modules.dep").write_text(
        "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko\n"
        "kernel/net/9p/9pnet.ko:\n"
        "kernel/fs/netfs/netfs.ko: kernel/fs/fscache/fscache.ko\n"
        "kernel/fs/fscache/fscache.ko:\n"
        "kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko kernel/virtio/virtio_ring.ko\n"
        "kernel/fs/overlayfs/overlay.ko:\n"
    )
    (mods / "modules.builtin").write_text("kernel/virtio/virtio_ring.ko\n")
    return mods


def test_module_load_order_puts_dependencies_first_once(tmp_path: Path) -> None:
    mods = write_modules(tmp_path)
    order = module_load_order(mods, ["9p", "9pnet-virtio", "overlay"])
    assert [p.relative_to(mods).as_posix() for p in order] == [
        "kernel/net/9p/9pnet.ko",
        "kernel/fs/fscache/fscache.ko",
        "kernel/fs/netfs/netfs.ko",
        "kernel/fs/9p/9p.ko",
        "kernel/net/9p/9pnet_virtio.ko.xz",  # virtio_ring is built in: no file
        "kernel/fs/overlayfs/overlay.ko",
    ]


def test_module_load_order_names_a_missing_module(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="virtio_pci"):
        module_load_order(write_modules(tmp_path), ["virtio_pci"])


def test_read_junit(tmp_path: Path) -> None:
    xml = tmp_path / "junit.xml"
    xml.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.vm.test_a" name="test_ok" time="1.5"/>'
        '<testcase classname="tests.vm.test_a" name="test_bad[x]" time="0.1">'
        '<failure message="boom"/></testcase>'
        '<testcase classname="tests.vm.test_b" name="test_skip" time="0"><skipped/></testcase>'
        "</testsuite></testsuites>"
    )
    assert [(c.nodeid, c.outcome, c.seconds) for c in read_junit(xml)] == [
        ("tests/vm/test_a.py::test_ok", "passed", 1.5),
        ("tests/vm/test_a.py::test_bad[x]", "failed", 0.1),
        ("tests/vm/test_b.py::test_skip", "skipped", 0.0),
    ]


def test_qemu_has_no_network_device_and_a_read_only_root(tmp_path: Path) -> None:
    kernel = Kernel("6.1.0-1-amd64", tmp_path / "vmlinuz", tmp_path / "modules")
    argv = qemu_argv(VmConfig(tmp_path), kernel, tmp_path / "initrd", tmp_path / "run")
    assert argv[argv.index("-nic") + 1] == "none"
    # The iBFT's NIC has no backend: no -netdev, and the device names none.
    assert "-netdev" not in argv
    (nic,) = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    assert nic.startswith("virtio-net-pci,") and "netdev=" not in nic
    assert argv[argv.index("-acpitable") + 1] == f"file={tmp_path / 'run' / 'ibft.bin'}"
    assert argv[argv.index("-accel") + 1].startswith("tcg")
    shares = [argv[i + 1] for i, a in enumerate(argv) if a == "-virtfs"]
    assert "path=/,mount_tag=hostroot" in shares[0] and "readonly=on" in shares[0]
    assert f"path={tmp_path / 'run' / 'out'}," in shares[1] and "readonly" not in shares[1]
    with pytest.raises(ValueError, match="comma"):
        qemu_argv(VmConfig(tmp_path), kernel, tmp_path / "initrd", tmp_path / "a,b")


def test_cache_dir_follows_the_environment(tmp_path: Path) -> None:
    assert cache_dir({"ISCSIKIT_VM_CACHE": str(tmp_path / "c")}) == tmp_path / "c"
    assert cache_dir({"HOME": str(tmp_path)}) == tmp_path / ".cache" / "iscsikit-vm"
    assert cache_dir({"HOME": "/"}) == Path("/var/tmp/iscsikit-vm")


def test_build_initramfs_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    busybox = tmp_path / "bin" / "busybox"
    busybox.parent.mkdir()
    busybox.write_bytes(b"#!/bin/sh\n")
    busybox.chmod(0o755)
    mods = write_modules(tmp_path)
    for rel in ("kernel/fs/9p/9p.ko", "kernel/net/9p/9pnet.ko", "kernel/fs/netfs/netfs.ko",
                "kernel/fs/fscache/fscache.ko", "kernel/net/9p/9pnet_virtio.ko.xz",
                "kernel/fs/overlayfs/overlay.ko"):  # fmt: skip
        (mods / rel).parent.mkdir(parents=True, exist_ok=True)
        (mods / rel).write_bytes(rel.encode())
    with open(mods / "modules.dep", "a") as dep:
        dep.write("kernel/drivers/virtio/virtio_pci.ko:\n")
    (mods / "kernel/drivers/virtio").mkdir(parents=True)
    (mods / "kernel/drivers/virtio/virtio_pci.ko").write_bytes(b"vp")
    kernel = Kernel("6.1.0-1-amd64", tmp_path / "vmlinuz", mods)
    monkeypatch.setenv("PATH", str(busybox.parent))
    first = build_initramfs(kernel, tmp_path).read_bytes()
    second = build_initramfs(kernel, tmp_path).read_bytes()
    assert first == second
    names = {e[0]: e for e in parse_newc(gzip.decompress(first))}
    assert names["dev/console"][3] == (5, 1)
    assert names["modules/order"][2].split() == [
        b"virtio_pci.ko", b"9pnet.ko", b"9pnet_virtio.ko.xz", b"fscache.ko", b"netfs.ko",
        b"9p.ko", b"overlay.ko",
    ]  # fmt: skip
    assert names["modules/9p.ko"][2] == b"kernel/fs/9p/9p.ko"


@pytest.mark.parametrize(
    ("argv", "own", "guest"),
    [
        (["-k", "login", "-x"], [], ["-k", "login", "-x"]),
        (["--keep", "-k", "login"], ["--keep"], ["-k", "login"]),
        (["--timeout", "5", "--", "-k", "a b"], ["--timeout", "5"], ["-k", "a b"]),
        (["tests/vm/test_x.py", "-x"], [], ["tests/vm/test_x.py", "-x"]),
        (
            ["--timeout", "1200", "--run", "python bench/b.py --rounds 5", "--results", "r"],
            ["--timeout", "1200", "--run", "python bench/b.py --rounds 5", "--results", "r"],
            [],
        ),
        (["--run=python b.py -x", "--keep"], ["--run=python b.py -x", "--keep"], []),
        (["--run", "-x", "-k", "a"], ["--run", "-x"], ["-k", "a"]),  # the value is its own
    ],
)
def test_arguments_after_the_harness_options_go_to_the_guest_in_order(
    argv: list[str], own: list[str], guest: list[str]
) -> None:
    assert split_args(argv) == (own, guest)


def test_run_replaces_pytest_with_the_command_through_bash(tmp_path: Path) -> None:
    assert guest_command(tmp_path, [], "python bench/b.py --rounds 5") == [
        "bash", "-c", "python bench/b.py --rounds 5",
    ]  # fmt: skip
    pytest_cmd = guest_command(tmp_path, ["-x"])
    assert pytest_cmd[:3] == [sys.executable, "-m", "pytest"]
    assert pytest_cmd[-2:] == ["tests/vm", "-x"]
    assert f"--junitxml={tmp_path / 'junit.xml'}" in pytest_cmd


def _source_env(env: str, script: str) -> list[str]:
    """Source a guest.env in bash as the guest init does, then run ``script``."""
    done = subprocess.run(
        ["bash", "-c", f"PATH=/usr/bin:/bin; . /dev/stdin; {script}"],
        input=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_guest_env_of_a_command_puts_the_callers_python_first(tmp_path: Path) -> None:
    kernel = Kernel("6.1.0-1-amd64", tmp_path / "vmlinuz", tmp_path / "mods" / "6.1.0-1-amd64")
    command = guest_command(tmp_path / "out", [], "echo \"$ISCSIKIT_VM_OUT\" 'a b'")
    env = _guest_env(tmp_path / "run", kernel, tmp_path, command, own_command=True)
    path, out, unbuffered, *argv = _source_env(
        env, 'echo "$PATH"; echo "$ISCSIKIT_VM_OUT"; echo "$PYTHONUNBUFFERED"; '
        'printf "%s\\n" "${COMMAND[@]}"'
    )  # fmt: skip
    assert path.split(":")[:3] == [str(Path(sys.executable).parent), "/usr/bin", "/bin"]
    assert out == str(tmp_path / "run" / "out")
    assert unbuffered == "1"
    assert argv == ["bash", "-c", "echo \"$ISCSIKIT_VM_OUT\" 'a b'"]
    # pytest runs keep the guest's PATH as it was
    plain = _guest_env(tmp_path / "run", kernel, tmp_path, ["true"])
    assert _source_env(plain, 'echo "$PATH"') == ["/usr/bin:/bin"]


def test_results_are_the_commands_files_copied_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    for name in ("junit.xml", "uname", "rc"):  # the harness's own
        (out / name).write_text("x")
    (out / "bench.json").write_text('{"ratio": 1.0}')
    (out / "sub" / "log.txt").write_text("log")
    produced = _results(out, tmp_path / "dest")
    assert [p.relative_to(out).as_posix() for p in produced] == ["bench.json", "sub/log.txt"]
    assert (tmp_path / "dest" / "bench.json").read_text() == '{"ratio": 1.0}'
    assert (tmp_path / "dest" / "sub" / "log.txt").read_text() == "log"
    assert not (tmp_path / "dest" / "rc").exists()
    assert [p.name for p in _results(out, None)] == ["bench.json", "log.txt"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--run", "true", "-k", "login"], "--run takes no pytest arguments"),
        (["--results", "r", "-k", "login"], "--results needs --run"),
    ],
)
def test_run_option_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
