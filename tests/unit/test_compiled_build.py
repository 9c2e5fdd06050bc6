"""The optional mypyc build (setup.py, docs/packaging.md): which build is in use, and
setup.py's choice between compiled and pure Python.

``tox -e compiled`` sets ISCSIKIT_EXPECT_COMPILED=1: the suite then fails unless it runs
against the compiled modules of an installed wheel (a run that silently tested the pure
source tree would otherwise pass).  Everywhere else the pure build is expected.
"""

from __future__ import annotations

import ast
import importlib
import os
import runpy
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import iscsikit
import iscsikit.proto

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "setup.py"
EXPECT_COMPILED = os.environ.get("ISCSIKIT_EXPECT_COMPILED") == "1"


def hot_path() -> list[str]:
    """setup.py's HOT_PATH, read without running setup.py."""
    for node in ast.parse(SETUP.read_text()).body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "HOT_PATH" for t in targets):
                assert node.value is not None
                value: list[str] = ast.literal_eval(node.value)
                return value
    raise AssertionError("setup.py has no HOT_PATH")


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def test_hot_path_names_proto_modules() -> None:
    paths = hot_path()
    assert paths, "nothing to compile"
    for path in paths:
        assert path.startswith("iscsikit/proto/"), path
        assert (ROOT / path).is_file(), path
    assert "iscsikit/proto/ffp_receive.py" in paths  # what compiled() looks at


def test_compiled_reports_the_modules_in_use() -> None:
    """compiled() is true exactly when the hot-path modules are extensions - all of them."""
    names = [module_name(p) for p in hot_path()]
    files = {name: importlib.import_module(name).__file__ for name in names}
    extensions = {name for name, file in files.items() if file and not file.endswith(".py")}
    assert extensions in (set(), set(files)), f"half compiled: {sorted(extensions)}"
    assert iscsikit.proto.compiled() is bool(extensions)


def test_expected_build_is_in_use() -> None:
    assert iscsikit.proto.compiled() is EXPECT_COMPILED
    if EXPECT_COMPILED:
        # The installed wheel, not the checkout (which holds no extension).
        assert Path(iscsikit.__file__).resolve().parent != ROOT / "iscsikit"


def test_child_python_in_the_checkout_uses_the_same_build() -> None:
    """Tests start ``python -m iscsikit...`` children; run from the checkout, they must
    import the same build (tox -e compiled: PYTHONSAFEPATH keeps the checkout off sys.path)."""
    out = subprocess.run(
        [sys.executable, "-c", "import iscsikit.proto as p; print(p.compiled())"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == str(EXPECT_COMPILED)


# -- setup.py's choice -------------------------------------------------------------------


class Captured:
    """What setup.py passed to setuptools.setup(), and what it asked mypyc to compile."""

    def __init__(self) -> None:
        self.setup: dict[str, Any] | None = None
        self.compiled: list[str] | None = None


@pytest.fixture
def run_setup(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Run setup.py with setuptools.setup() recorded instead of building anything."""
    for name in ("ISCSIKIT_PURE", "ISCSIKIT_COMPILE", "CC"):
        monkeypatch.delenv(name, raising=False)
    cwd = os.getcwd()

    def run(argv: list[str], *, mypyc: bool, **env: str) -> Captured:
        captured = Captured()

        def setup(**kwargs: Any) -> None:
            captured.setup = kwargs

        def mypycify(paths: list[str], **_: Any) -> list[str]:
            captured.compiled = [path for path in paths if not path.startswith("-")]
            return ["<extensions>"]

        for name, value in env.items():
            monkeypatch.setenv(name, value)
        setuptools = types.ModuleType("setuptools")
        setuptools.setup = setup  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "setuptools", setuptools)
        monkeypatch.setattr(sys, "argv", ["setup.py", *argv])
        build: types.ModuleType | None = None
        if mypyc:
            build = types.ModuleType("mypyc.build")
            build.mypycify = mypycify  # type: ignore[attr-defined]
        # None in sys.modules makes the import fail: "mypy is not installed".
        monkeypatch.setitem(sys.modules, "mypyc.build", build)
        runpy.run_path(str(SETUP), run_name="__main__")
        return captured

    try:
        yield run
    finally:
        os.chdir(cwd)


def test_setup_compiles_when_mypyc_is_there(run_setup: Any) -> None:
    captured = run_setup(["bdist_wheel"], mypyc=True)
    assert captured.compiled == hot_path()
    assert captured.setup["ext_modules"] == ["<extensions>"]
    assert captured.setup["setup_requires"] == []


def test_setup_without_mypy_builds_pure(run_setup: Any) -> None:
    captured = run_setup(["bdist_wheel"], mypyc=False)
    assert captured.setup == {}


def test_iscsikit_pure_needs_nothing(run_setup: Any) -> None:
    for argv in (["egg_info"], ["bdist_wheel"]):
        captured = run_setup(argv, mypyc=True, ISCSIKIT_PURE="1")
        assert captured.setup == {}
        assert captured.compiled is None


def test_editable_install_stays_pure(run_setup: Any) -> None:
    captured = run_setup(["editable_wheel", "--dist-info-dir", "x"], mypyc=True)
    assert captured.setup == {}
    assert captured.compiled is None


def test_iscsikit_compile_asks_for_mypy_then_insists(run_setup: Any) -> None:
    # get_requires_for_build_wheel runs egg_info: mypy becomes a build requirement.
    asked = run_setup(["egg_info"], mypyc=False, ISCSIKIT_COMPILE="1")
    assert asked.setup is not None
    assert any(r.startswith("mypy==") for r in asked.setup["setup_requires"])
    # Metadata runs compile nothing, even where mypy is installed.
    again = run_setup(["egg_info"], mypyc=True, ISCSIKIT_COMPILE="1")
    assert again.compiled is None
    assert again.setup == asked.setup
    # The build itself without mypy (--no-build-isolation) fails instead of going pure.
    with pytest.raises(SystemExit, match="mypy is not installed"):
        run_setup(["bdist_wheel"], mypyc=False, ISCSIKIT_COMPILE="1")
    built = run_setup(["bdist_wheel"], mypyc=True, ISCSIKIT_COMPILE="1")
    assert built.setup["ext_modules"] == ["<extensions>"]


def test_no_compiler_builds_pure_unless_compiling_is_required(run_setup: Any) -> None:
    captured = run_setup(["bdist_wheel"], mypyc=True, CC="/nonexistent/cc")
    assert captured.setup == {}
    with pytest.raises(SystemExit, match="no working C compiler"):
        run_setup(["bdist_wheel"], mypyc=True, CC="/nonexistent/cc", ISCSIKIT_COMPILE="1")
