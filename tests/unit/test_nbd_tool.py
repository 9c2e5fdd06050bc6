"""iscsikit-nbd argument handling and exit codes (no sockets: every case fails before
listening, or replaces the device opener)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

import iscsikit
from iscsikit.errors import IscsiErr, LoginError
from iscsikit.tools import nbd as cli


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["memory:1M"],  # neither --socket nor --port
        ["memory:1M", "--socket", "/x", "--port", "1"],
        ["memory:1M", "--port", "70000"],
        ["memory:1M", "--port", "abc"],
        ["memory:1M", "--socket", "/x", "--bogus"],
    ],
)
def test_bad_arguments_exit_7_with_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == IscsiErr.INVAL == 7
    err = capsys.readouterr().err
    assert err.startswith("usage: iscsikit-nbd")


@pytest.mark.parametrize("url", ["memory:", "memory:12X", "memory:100", "memory:0"])
def test_bad_memory_sizes_exit_7(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([url, "--socket", "/nonexistent/dir/s"]) == 7
    assert "iscsikit-nbd:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "size"), [("64M", 64 << 20), ("1g", 1 << 30), ("512", 512), ("4KiB", 4096)]
)
def test_parse_size(text: str, size: int) -> None:
    assert cli.parse_size(text) == size


def test_iscsi_urls_go_to_open_lun_async_lazily(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []

    @contextlib.asynccontextmanager
    async def open_lun_async(url: str) -> AsyncIterator[object]:
        seen.append(url)
        raise LoginError("login refused")
        yield  # pragma: no cover

    monkeypatch.setattr(iscsikit, "open_lun_async", open_lun_async, raising=False)
    url = "iscsi://127.0.0.1/iqn.2024-01.test:t/0"
    assert cli.main([url, "--socket", "/nonexistent/dir/s"]) == IscsiErr.LOGIN
    assert seen == [url]
    assert "login refused" in capsys.readouterr().err


def test_unbindable_socket_is_an_error_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["memory:1M", "--socket", "/nonexistent/dir/s"]) == IscsiErr.ERR
    assert "Traceback" not in capsys.readouterr().err
