"""The bash completion and the man page are generated from the parser's tables; the
committed files must be exactly what the generators produce (so they never rot)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from iscsikit.cli.completion import bash_completion
from iscsikit.cli.manpage import man_page
from iscsikit.cli.options import MODE_LETTERS, OPTIONS

REPO = Path(__file__).parents[3]
COMPLETION = REPO / "conf/iscsikit-adm.bash-completion"
MANPAGE = REPO / "docs/iscsikit-adm.8"


def test_committed_completion_is_generated() -> None:
    assert COMPLETION.read_text() == bash_completion(), (
        "regenerate: python -m iscsikit.cli.completion > conf/iscsikit-adm.bash-completion"
    )


def test_committed_manpage_is_generated() -> None:
    assert MANPAGE.read_text() == man_page(), (
        "regenerate: python -m iscsikit.cli.manpage > docs/iscsikit-adm.8"
    )


def test_manpage_lists_every_option_and_exit_code() -> None:
    page = man_page()
    for o in OPTIONS:
        assert f"\\-\\-{o.long}" in page
    assert "\\fB20\\fR\nISCSID_NOTCONN: could not connect to iscsid" in page


def test_completion_offers_each_modes_letters() -> None:
    script = bash_completion()
    lines = script.splitlines()
    session = lines[lines.index("        session)") + 1]
    words = session.split('"')[1].split()
    assert {w[1] for w in words if len(w) == 2} == set(MODE_LETTERS["session"])
    assert "--output" in words and "-T" not in words  # extensions everywhere; -T is node's


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed to run the script")
def test_completion_runs_in_bash() -> None:
    def complete(line: str) -> list[str]:
        words = line.split(" ")
        script = (
            f"source {COMPLETION}; "
            f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
            f"COMP_LINE={line!r}; COMP_POINT={len(line)}; _iscsikit_adm; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
        return out.stdout.split()

    assert complete("iscsikit-adm -m s") == ["session"]
    assert "-r" in complete("iscsikit-adm -m session -")
    assert "-T" not in complete("iscsikit-adm -m session -")
    assert complete("iscsikit-adm -m node -o up") == ["update"]
    assert complete("iscsikit-adm -m node -U ") == ["all", "manual", "automatic"]
    assert complete("iscsikit-adm --output j") == ["json"]
