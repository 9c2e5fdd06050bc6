"""The progress bar: drawn on a TTY's stderr only, rate-limited, erased at the end."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from iscsikit.cli.progress import NullProgress, Progress, enabled, progress


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


@dataclass
class Env:
    stderr: io.StringIO = field(default_factory=TtyStream)
    isatty: bool = True
    environ: Mapping[str, str] = field(default_factory=lambda: {"TERM": "xterm"})


@dataclass
class Args:
    no_progress: bool = False


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_enabled_only_on_a_terminal_with_many_items() -> None:
    assert enabled(Env(), Args(), 20)
    assert not enabled(Env(), Args(), 19)
    assert not enabled(Env(), Args(no_progress=True), 100)
    assert not enabled(Env(isatty=False), Args(), 100)  # stdout piped
    assert not enabled(Env(stderr=io.StringIO()), Args(), 100)  # stderr redirected
    assert not enabled(Env(environ={"TERM": "dumb"}), Args(), 100)
    assert enabled(Env(), Args(), 5, threshold=5)


def test_progress_factory_picks_the_null_bar_when_disabled() -> None:
    env = Env(isatty=False)
    bar = progress(env, Args(), 100, "x")
    assert isinstance(bar, NullProgress)
    with bar:
        for _ in range(100):
            bar.advance()
    assert bar.done == 100
    assert env.stderr.getvalue() == ""
    assert type(progress(Env(), Args(), 100, "x")) is Progress


def test_bar_text_and_erasure() -> None:
    stream = TtyStream()
    clock = Clock()
    with Progress(stream, 4, "Logging in", clock=clock, min_interval=0.1) as bar:
        assert bar.line() == f"Logging in [{'.' * 30}] 0/4"
        bar.advance()
        assert stream.getvalue().endswith(f"\rLogging in [{'#' * 7}{'.' * 23}] 1/4")
        written = stream.getvalue()
        bar.advance()  # same instant: not redrawn
        assert stream.getvalue() == written
        clock.now = 1.0
        bar.advance()
        assert stream.getvalue().endswith("] 3/4")
        bar.advance()  # the last item is always drawn
        assert stream.getvalue().endswith(f"[{'#' * 30}] 4/4")
    width = len(bar.line())
    assert stream.getvalue().endswith("\r" + " " * width + "\r")  # erased
    assert "\n" not in stream.getvalue()


def test_clear_before_a_message_then_redraw() -> None:
    stream = TtyStream()
    bar = Progress(stream, 10, "x", clock=Clock(), min_interval=100)
    bar.advance()
    bar.clear()
    assert stream.getvalue().endswith("\r")
    stream.write("iscsikit-adm: oops\n")
    bar.advance()  # drawn again right away after a clear
    assert stream.getvalue().endswith("] 2/10")
    bar.clear()
    bar.clear()  # nothing shown: nothing written
    assert stream.getvalue().count("\r" + " " * len(bar.line()) + "\r") == 2


def test_count_never_passes_total_and_broken_streams_are_ignored() -> None:
    class Broken(TtyStream):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    bar = Progress(Broken(), 2, "x")
    for _ in range(5):
        bar.advance()
    bar.close()
    assert bar.done == 2


@pytest.mark.parametrize("total", [0, 1])
def test_small_totals(total: int) -> None:
    stream = TtyStream()
    with Progress(stream, total, "x") as bar:
        bar.advance()
    assert bar.done == total
