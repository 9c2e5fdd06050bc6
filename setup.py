"""Build hook: compile the data path with mypyc when the build can (docs/packaging.md).

Everything else about the package is declared in pyproject.toml; this file only adds the
C extensions.  The pure-Python modules stay the reference and are always shipped: a
compiled module is the same source, built by mypyc into an extension that Python
imports in its place.

* ``ISCSIKIT_PURE=1``: never compile (needs neither mypy nor a C compiler: offline
  packagers);
* ``ISCSIKIT_COMPILE=1``: compile, asking the build frontend for mypy (a PEP 517
  build requirement), and fail the build if it cannot;
* neither: compile when mypy (mypyc) is importable in the build environment and a C
  compiler works - e.g. ``pip wheel --no-build-isolation .`` in an environment that has
  mypy - else build pure Python.

Editable installs (``pip install -e .``, the development tree) are always pure: an
extension built in place would shadow the source being edited.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from typing import Any

from setuptools import setup

#: The modules compiled: the Full Feature Phase machine and what it calls per PDU.
HOT_PATH = [
    "iscsikit/proto/constants.py",
    "iscsikit/proto/digest.py",
    "iscsikit/proto/ffp_commands.py",
    "iscsikit/proto/ffp_control.py",
    "iscsikit/proto/ffp_core.py",
    "iscsikit/proto/ffp_events.py",
    "iscsikit/proto/ffp_params.py",
    "iscsikit/proto/ffp_receive.py",
    "iscsikit/proto/ffp_renegotiation.py",
    "iscsikit/proto/ffp_stats.py",
    "iscsikit/proto/ffp_wire.py",
    "iscsikit/proto/ffp.py",
    "iscsikit/proto/session.py",
    "iscsikit/proto/task.py",
]
#: What a compiled build needs besides setuptools: the mypy that tox -e type checks with,
#: and pluggy (mypyc type-checks everything the package imports).
BUILD_REQUIRES = ["mypy==2.4.1", "pluggy>=1.3"]


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "no", "false")


def _editable() -> bool:
    return any(arg in ("editable_wheel", "develop") for arg in sys.argv[1:])


def _compiler_works() -> bool:
    """Whether a C compiler and Python's headers are here (what building an extension needs)."""
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    if shutil.which(compiler.split()[0]) is None:
        return False
    return os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))


def _building() -> bool:
    """Whether this run builds code (not only metadata: egg_info, dist_info, sdist)."""
    return any(arg in _BUILD_COMMANDS for arg in sys.argv[1:])


_BUILD_COMMANDS = {"bdist_wheel", "build", "build_ext", "install", "bdist_egg"}


def _options() -> dict[str, Any]:
    if _flag("ISCSIKIT_PURE") or _editable():
        return {}
    required = _flag("ISCSIKIT_COMPILE")
    if not _building():
        # Under PEP 517, setup_requires is what get_requires_for_build_wheel reports
        # (setup.py egg_info): the frontend installs it before the build itself.
        return {"setup_requires": BUILD_REQUIRES} if required else {}
    try:
        from mypyc.build import mypycify
    except ImportError:
        if required:
            raise SystemExit("iscsikit: ISCSIKIT_COMPILE=1 but mypy is not installed") from None
        print("iscsikit: mypy is not installed: building pure Python", file=sys.stderr)
        return {}
    if not _compiler_works():
        if required:
            raise SystemExit("iscsikit: ISCSIKIT_COMPILE=1 but no working C compiler")
        print("iscsikit: no working C compiler: building pure Python", file=sys.stderr)
        return {}
    os.chdir(os.path.dirname(os.path.abspath(__file__)))  # mypyc wants project-relative paths
    try:
        # mypyc type-checks what the modules import (the whole package, through
        # iscsikit/__init__.py), so the runtime dependency pluggy must be importable;
        # errors outside HOT_PATH are tox -e type's to report, not the build's.
        extensions = mypycify(
            ["--follow-imports=silent", *HOT_PATH], opt_level="3", debug_level="0"
        )
    except (Exception, SystemExit) as exc:  # mypy reports errors by exiting
        if required:
            raise
        print(f"iscsikit: mypyc failed ({exc}): building pure Python", file=sys.stderr)
        return {}
    return {
        "setup_requires": BUILD_REQUIRES if required else [],
        "ext_modules": extensions,
        # Not build/: a later pure build of the same tree would pack stale extensions
        # left in build/lib.
        "options": {"build": {"build_base": "build/mypyc"}},
    }


setup(**_options())
