"""The environment a command runs in: streams, process environment, file-system roots.

Everything the CLI touches outside itself goes through :class:`CliEnv`, so a test runs
any command against ``tmp_path`` with ``StringIO`` streams and no global state::

    env = CliEnv.for_test(root=tmp_path)
    assert main(["-m", "node"], env=env) == 21

The records store and iscsid.conf are opened on first use and cached: a mode that does
not need them never imports them (``iscsikit-adm -m session`` never loads the records
package, ``-m node`` never parses iscsid.conf unless it creates a record).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from iscsikit.config.paths import Paths, resolve_paths

if TYPE_CHECKING:
    from iscsikit.config.iscsid_conf import IscsidConf
    from iscsikit.records.store import Records

__all__ = ["CliEnv"]


class CliEnv:
    """Streams, environment and paths of one invocation (see docs/cli-contract.md).

    A plain class, not a dataclass: it is made once per command, and generating a
    dataclass's methods is a measurable part of the command line's start-up."""

    def __init__(
        self,
        stdout: TextIO,
        stderr: TextIO,
        environ: Mapping[str, str],
        paths: Paths,
        isatty: bool = False,
        session_layer: Any = None,
    ) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.environ = environ
        self.paths = paths
        self.isatty = isatty
        self._records: Records | None = None
        self._iscsid_conf: IscsidConf | None = None
        #: The session layer; ``None`` until first used (tests inject a fake here).
        self.session_layer = session_layer

    def __repr__(self) -> str:
        return (
            f"CliEnv(stdout={self.stdout!r}, stderr={self.stderr!r}, environ={self.environ!r}, "
            f"paths={self.paths!r}, isatty={self.isatty!r})"
        )

    @classmethod
    def from_process(cls) -> CliEnv:
        """The real process: sys streams, os.environ, paths from ``ISCSIKIT_ROOT``."""
        environ = os.environ
        try:
            isatty = sys.stdout.isatty()
        except (AttributeError, ValueError):
            isatty = False
        return cls(sys.stdout, sys.stderr, environ, resolve_paths(env=environ), isatty)

    @classmethod
    def for_test(
        cls,
        root: Path,
        environ: Mapping[str, str] | None = None,
        *,
        isatty: bool = False,
        session_layer: Any = None,
    ) -> CliEnv:
        """StringIO streams and everything under ``root`` (``ISCSIKIT_ROOT``)."""
        env = {**(environ or {}), "ISCSIKIT_ROOT": str(root)}
        return cls(
            io.StringIO(),
            io.StringIO(),
            env,
            resolve_paths(env=env),
            isatty,
            session_layer=session_layer,
        )

    def records(self) -> Records:
        """The records database (``Records(self.paths)``), created on first use."""
        if self._records is None:
            from iscsikit.records.store import Records

            self._records = Records(self.paths)
        return self._records

    def iscsid_conf(self) -> IscsidConf:
        """iscsid.conf (``IscsidConf.load(self.paths.iscsid_conf)``), read on first use."""
        if self._iscsid_conf is None:
            from iscsikit.config.iscsid_conf import IscsidConf

            self._iscsid_conf = IscsidConf.load(self.paths.iscsid_conf)
        return self._iscsid_conf

    def session_service(self) -> Any:
        """The session layer (``iscsikit.manager.sessions.session_service(self)``, a
        ``SessionService``: see docs/cli-contract.md), created on first use unless a
        test put one in :attr:`session_layer`.  Typed ``Any`` so that this module does
        not depend on the session layer being importable."""
        if self.session_layer is None:
            import importlib

            module = importlib.import_module("iscsikit.manager.sessions")
            self.session_layer = module.session_service(self)
        return self.session_layer

    def out(self, text: str) -> None:
        """Write ``text`` to stdout as is (callers end lines with ``\\n``)."""
        self.stdout.write(text)

    def err(self, message: str) -> None:
        """One ``iscsikit-adm: <message>`` line on stderr."""
        self.stderr.write(f"iscsikit-adm: {message}\n")
