"""Where iscsikit's files are: configuration, the open-iscsi database, locks, run state.

Every path hangs from a *root*: ``ISCSIKIT_ROOT`` (or the ``root`` argument), ``/`` by
default.  With ``ISCSIKIT_ROOT=/tmp/t`` the config file is ``/tmp/t/etc/iscsi/iscsid.conf``,
nodes live under ``/tmp/t/etc/iscsi/nodes`` and the lock under ``/tmp/t/run/lock/iscsi``
-- for tests, containers and unprivileged users.

Fixed locations (under the root):

* ``etc/iscsi`` -- configuration home: ``iscsid.conf`` and ``initiatorname.iscsi``;
* ``run/lock/iscsi`` -- open-iscsi's lock directory (``lock`` and ``lock.write``), shared
  with a concurrently running iscsiadm;
* ``run/iscsikit`` -- iscsikit's own run-time state.

The database root (``nodes/``, ``send_targets/``, ``isns/``, ``static/``, ``fw/``,
``ifaces/``) is resolved in this order, first match wins:

1. the ``db_root`` argument of :func:`resolve_paths` (used as given, not prefixed);
2. ``ISCSIKIT_DB_ROOT`` in the environment (prefixed by the root, like every path);
3. ``db_root = <path>`` in iscsikit's own ``etc/iscsikit/iscsikit.conf`` (configobj
   syntax; prefixed by the root);
4. auto-detection: ``etc/iscsi`` if it holds a database (any of the six directories
   exists) or if ``var/lib/iscsi`` holds none; else ``var/lib/iscsi``.  open-iscsi up
   to 2.1.8 (Debian, Ubuntu) keeps the database in ``/etc/iscsi``; 2.1.9 and later
   upstream builds, RHEL and SUSE in ``/var/lib/iscsi``.

``Paths.db_root_source`` records which rule chose the database root.  This module only
looks at the file system (``stat``) and reads ``iscsikit.conf``; it never creates
anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from iscsikit.errors import InvalidParameterError

__all__ = ["DB_SUBDIRS", "Paths", "resolve_paths", "resolve_root"]

#: The directories that make a directory an open-iscsi database.
DB_SUBDIRS = ("nodes", "send_targets", "isns", "static", "fw", "ifaces")

DbRootSource = Literal["argument", "environment", "iscsikit.conf", "detected"]


@dataclass(frozen=True, slots=True)
class Paths:
    root: Path
    config_dir: Path
    db_root: Path
    lock_dir: Path
    run_dir: Path
    db_root_source: DbRootSource = "detected"

    @property
    def iscsid_conf(self) -> Path:
        return self.config_dir / "iscsid.conf"

    @property
    def initiatorname_file(self) -> Path:
        return self.config_dir / "initiatorname.iscsi"

    @property
    def iscsikit_conf(self) -> Path:
        return iscsikit_conf_path(self.root)

    @property
    def nodes_dir(self) -> Path:
        return self.db_root / "nodes"

    @property
    def send_targets_dir(self) -> Path:
        return self.db_root / "send_targets"

    @property
    def isns_dir(self) -> Path:
        return self.db_root / "isns"

    @property
    def static_dir(self) -> Path:
        return self.db_root / "static"

    @property
    def fw_dir(self) -> Path:
        return self.db_root / "fw"

    @property
    def ifaces_dir(self) -> Path:
        return self.db_root / "ifaces"

    @property
    def lock_file(self) -> Path:
        """open-iscsi's lock file; writers ``link()`` it to :attr:`lock_write_file`."""
        return self.lock_dir / "lock"

    @property
    def lock_write_file(self) -> Path:
        return self.lock_dir / "lock.write"


def under(root: Path, path: str | os.PathLike[str]) -> Path:
    """``path`` prefixed by ``root`` (an absolute path loses its leading ``/``)."""
    pure = PurePosixPath(os.fspath(path))
    if pure.is_absolute():
        pure = pure.relative_to("/")
    return root / pure


def resolve_root(env: Mapping[str, str] | None = None) -> Path:
    """``ISCSIKIT_ROOT`` made absolute, or ``/`` when unset or empty."""
    env = os.environ if env is None else env
    value = env.get("ISCSIKIT_ROOT", "")
    return Path(value).absolute() if value else Path("/")


def iscsikit_conf_path(root: Path) -> Path:
    return root / "etc" / "iscsikit" / "iscsikit.conf"


def _has_db(directory: Path) -> bool:
    return any((directory / sub).is_dir() for sub in DB_SUBDIRS)


def read_iscsikit_conf(root: Path) -> dict[str, str]:
    """iscsikit.conf's ``key = value`` settings (empty when the file does not exist);
    InvalidParameterError for a file that cannot be read or parsed."""
    path = iscsikit_conf_path(root)
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InvalidParameterError(f"cannot read {path}: {exc.strerror}") from exc
    # Imported only when the file exists: every command resolves paths, few have one.
    from configobj import ConfigObj, ConfigObjError

    try:
        conf = ConfigObj(
            text.splitlines(), list_values=False, interpolation=False, raise_errors=True
        )
    except ConfigObjError as exc:
        raise InvalidParameterError(f"{path}: {exc}") from exc
    return {k: v for k, v in conf.items() if isinstance(v, str)} | {
        k: "" for k, v in conf.items() if not isinstance(v, str)
    }


def _db_root_from_conf(root: Path) -> str | None:
    path = iscsikit_conf_path(root)
    conf = read_iscsikit_conf(root)
    value = conf.get("db_root")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameterError(f"{path}: db_root must be a path")
    return value.strip()


def resolve_paths(
    *,
    root: Path | None = None,
    db_root: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Paths:
    """Resolve every iscsikit location (see the module docstring for the order).

    ``env`` defaults to ``os.environ``; ``root`` overrides ``ISCSIKIT_ROOT``.  A broken
    ``iscsikit.conf`` raises :class:`~iscsikit.errors.InvalidParameterError`.
    """
    env = os.environ if env is None else env
    base = Path(root).absolute() if root is not None else resolve_root(env)
    config_dir = base / "etc" / "iscsi"
    source: DbRootSource
    if db_root is not None:
        chosen, source = Path(db_root), "argument"
    elif env.get("ISCSIKIT_DB_ROOT"):
        chosen, source = under(base, env["ISCSIKIT_DB_ROOT"]), "environment"
    elif (configured := _db_root_from_conf(base)) is not None:
        chosen, source = under(base, configured), "iscsikit.conf"
    else:
        var_lib = base / "var" / "lib" / "iscsi"
        use_etc = _has_db(config_dir) or not _has_db(var_lib)
        chosen, source = (config_dir if use_etc else var_lib), "detected"
    return Paths(
        root=base,
        config_dir=config_dir,
        db_root=chosen,
        lock_dir=base / "run" / "lock" / "iscsi",
        run_dir=base / "run" / "iscsikit",
        db_root_source=source,
    )
