"""A progress bar for operations over many records or portals, on stderr, on a TTY only.

iscsiadm prints nothing while it works through hundreds of logins or records; a person
at a terminal deserves to see that something happens.  Scripts must see exactly what
iscsiadm prints, so the bar appears only when *all* of these hold:

* the operation covers at least :data:`THRESHOLD` items;
* stdout is a terminal (``CliEnv.isatty``) and so is stderr -- never in a pipe, a file,
  under cron or in tests;
* ``--no-progress`` was not given and ``TERM`` is not ``dumb``.

The bar is drawn on **stderr** only (stdout stays byte-identical to iscsiadm's), at
most every :data:`MIN_INTERVAL` seconds, and erased when the operation ends, so no
trace of it remains in the terminal's scrollback.  Call :meth:`Progress.clear` before
writing a message to stderr while a bar is shown (the next :meth:`Progress.advance`
draws it again).

Usage::

    with progress(env, args, len(nodes), "Logging in") as bar:
        for node in nodes:
            ...
            bar.advance()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Protocol, TextIO

__all__ = ["MIN_INTERVAL", "THRESHOLD", "NullProgress", "Progress", "progress"]

#: Fewer items than this finish too quickly for a bar to help.
THRESHOLD = 20
#: Redraw at most this often (seconds): drawing is not free over ssh.
MIN_INTERVAL = 0.1
_BAR_WIDTH = 30


class _Stream(Protocol):
    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...


class _Env(Protocol):
    @property
    def stderr(self) -> TextIO: ...
    @property
    def isatty(self) -> bool: ...
    @property
    def environ(self) -> Mapping[str, str]: ...


class _Args(Protocol):
    @property
    def no_progress(self) -> bool: ...


class Progress:
    """``label [#########.........] 12/40`` redrawn in place on ``stream``."""

    def __init__(
        self,
        stream: _Stream,
        total: int,
        label: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = MIN_INTERVAL,
    ) -> None:
        self.stream = stream
        self.total = max(total, 0)
        self.label = label
        self.done = 0
        self._clock = clock
        self._min_interval = min_interval
        self._last_draw: float | None = None
        self._width = 0  # characters of the line on screen (0: nothing shown)

    def line(self) -> str:
        """The text of the bar for the current count."""
        total = self.total or 1
        filled = min(_BAR_WIDTH, _BAR_WIDTH * self.done // total)
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        return f"{self.label} [{bar}] {self.done}/{self.total}"

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more items done; redraw unless drawn very recently."""
        self.done = min(self.done + n, self.total)
        now = self._clock()
        due = self._last_draw is None or now - self._last_draw >= self._min_interval
        if due or self.done >= self.total:
            self._draw(now)

    def _draw(self, now: float) -> None:
        text = self.line()
        pad = " " * max(0, self._width - len(text))
        self._write(f"\r{text}{pad}")
        self._width = len(text)
        self._last_draw = now

    def clear(self) -> None:
        """Erase the bar (before another message goes to the same stream)."""
        if self._width:
            self._write("\r" + " " * self._width + "\r")
            self._width = 0
            self._last_draw = None

    def close(self) -> None:
        self.clear()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken terminal: the bar is optional
            pass

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class NullProgress(Progress):
    """The bar that is never drawn (not a TTY, too few items, ``--no-progress``)."""

    def __init__(self, total: int = 0, label: str = "") -> None:
        super().__init__(_NullStream(), total, label)

    def advance(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)

    def clear(self) -> None:
        pass


class _NullStream:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _stream_is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def enabled(env: _Env, args: _Args, total: int, *, threshold: int = THRESHOLD) -> bool:
    """Whether an operation over ``total`` items shows a bar (see the module docstring)."""
    return (
        total >= threshold
        and not args.no_progress
        and env.isatty
        and env.environ.get("TERM", "") != "dumb"
        and _stream_is_tty(env.stderr)
    )


def progress(
    env: _Env, args: _Args, total: int, label: str, *, threshold: int = THRESHOLD
) -> Progress:
    """A :class:`Progress` on ``env.stderr`` when :func:`enabled`, else a
    :class:`NullProgress`; either way a context manager with ``advance``/``clear``."""
    if enabled(env, args, total, threshold=threshold):
        return Progress(env.stderr, total, label)
    return NullProgress(total, label)
