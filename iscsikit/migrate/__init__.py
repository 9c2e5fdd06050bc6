"""Migration from linux-iscsi (the SLES9 / RHEL4 driver before open-iscsi).

``iscsikit.migrate.migrate(root=...)`` reads linux-iscsi's ``/etc/iscsi.conf``, its
bindings file and ``/etc/fstab.iscsi`` under ``root`` and writes the open-iscsi /
iscsikit equivalents (discovery records, iscsid.conf node settings, node records,
iscsikit.conf failover preferences, bindings, fstab lines); ``dry_run=True`` only says
what it would write.  Every setting without an equivalent is reported.  The command
is ``iscsikit-migrate`` (:mod:`iscsikit.tools.migrate`); the mapping is in
docs/migration.md.  Modules: :mod:`~iscsikit.migrate.conf` (the iscsi.conf reader),
:mod:`~iscsikit.migrate.legacy_files` (bindings, fstab.iscsi),
:mod:`~iscsikit.migrate.mapping` (the key table and the plan),
:mod:`~iscsikit.migrate.apply` (writing it).
"""

from __future__ import annotations

from pathlib import Path

from iscsikit.config.paths import Paths, resolve_paths, under
from iscsikit.errors import InvalidParameterError
from iscsikit.migrate.apply import MigrationResult, apply_plan
from iscsikit.migrate.conf import LinuxIscsiConf, parse_conf
from iscsikit.migrate.legacy_files import parse_bindings, parse_fstab
from iscsikit.migrate.mapping import MigrationPlan, build_plan
from iscsikit.records import Records

__all__ = [
    "BINDINGS_FILES",
    "CONF_FILE",
    "FSTAB_FILE",
    "LinuxIscsiConf",
    "MigrationPlan",
    "MigrationResult",
    "migrate",
    "parse_conf",
    "plan_migration",
]

CONF_FILE = "/etc/iscsi.conf"
#: linux-iscsi's bindings file: the first that exists (4.x, then 3.x).
BINDINGS_FILES = ("/var/iscsi/bindings", "/etc/iscsi.bindings")
FSTAB_FILE = "/etc/fstab.iscsi"
#: linux-iscsi's initiator name (open-iscsi's is /etc/iscsi/initiatorname.iscsi).
INITIATORNAME_FILE = "/etc/initiatorname.iscsi"


def _read(path: Path, shown: str, required: bool) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="strict")
    except FileNotFoundError:
        if required:
            raise InvalidParameterError(f"{shown}: no such file") from None
        return None
    except UnicodeDecodeError:
        raise InvalidParameterError(f"{shown}: not a text file") from None
    except OSError as exc:
        raise InvalidParameterError(f"cannot read {shown}: {exc.strerror}") from exc


def plan_migration(
    root: Path,
    *,
    conf: str | None = None,
    bindings: str | None = None,
    fstab: str | None = None,
) -> MigrationPlan:
    """Read linux-iscsi's files under ``root`` (a path given explicitly must exist:
    InvalidParameterError, exit 7) and build the plan."""
    conf_path = conf or CONF_FILE
    text = _read(under(root, conf_path), conf_path, conf is not None)
    plan = build_plan(parse_conf(text, conf_path) if text is not None else None)
    candidates = (bindings,) if bindings else BINDINGS_FILES
    for candidate in candidates:
        text = _read(under(root, candidate), candidate, bindings is not None)
        if text is not None:
            plan.bindings, problems = parse_bindings(text, candidate)
            plan.bindings_path = candidate
            plan.problems += problems
            break
    fstab_path = fstab or FSTAB_FILE
    text = _read(under(root, fstab_path), fstab_path, fstab is not None)
    if text is not None:
        plan.fstab, problems = parse_fstab(text, fstab_path)
        plan.fstab_path = fstab_path
        plan.problems += problems
    text = _read(under(root, INITIATORNAME_FILE), INITIATORNAME_FILE, False)
    for line in (text or "").splitlines():  # the last InitiatorName= line, as its reader
        words = line.strip().removeprefix("InitiatorName=").split()
        if line.strip().startswith("InitiatorName=") and words:
            plan.initiator_name, plan.initiator_path = words[0], INITIATORNAME_FILE
    if plan.conf is None and not plan.bindings_path and not plan.fstab_path:
        raise InvalidParameterError(
            f"nothing to migrate: none of {CONF_FILE}, {', '.join(BINDINGS_FILES)},"
            f" {FSTAB_FILE} exists under {root}"
        )
    return plan


def migrate(
    root: str | Path = "/",
    *,
    dry_run: bool = False,
    discover: bool = False,
    conf: str | None = None,
    bindings: str | None = None,
    fstab: str | None = None,
    paths: Paths | None = None,
    records: Records | None = None,
) -> MigrationResult:
    """Migrate linux-iscsi's configuration under ``root`` (see the package docstring).

    ``paths`` / ``records`` default to iscsikit's locations under ``root``
    (:func:`~iscsikit.config.paths.resolve_paths`).  The result lists what was (or
    would be) written and what was not migrated; its ``exit_code`` is 0, or 1 when
    anything is reported.
    """
    base = Path(root).absolute()
    plan = plan_migration(base, conf=conf, bindings=bindings, fstab=fstab)
    where = paths if paths is not None else resolve_paths(root=base)
    return apply_plan(plan, where, dry_run=dry_run, discover=discover, records=records)
