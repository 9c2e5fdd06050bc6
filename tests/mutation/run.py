"""A scripted mutant set: one AST mutation at a time in a target function, tests run -x.

Usage (see README.md): run it in a private clone, never in a shared work tree - each
mutant is written over the real source file while its tests run, and restored after:

    git clone . /tmp/iscsikit-mut && cd /tmp/iscsikit-mut
    python3 -B tests/mutation/run.py --target receive

Mutation operators (each applied alone, at one node of one listed function):

* ``cmp``     a comparison flipped (== / !=, < / >=, <= / >, in / not in, is / is not)
              or moved across its boundary (< / <=, > / >=);
* ``bool``    ``and`` / ``or`` swapped;
* ``not``     a ``not`` dropped;
* ``cond``    an ``if`` / ``while`` / ternary condition that is not a single comparison,
              negated;
* ``arith``   ``+`` / ``-``, ``&`` / ``|``, ``<<`` / ``>>`` swapped;
* ``const``   an integer constant off by one (n + 1 and n - 1);
* ``raise``   a ``raise`` statement dropped;
* ``stmt``    a call statement or an augmented assignment (``x += 1``) dropped;
* ``return``  ``return value`` made ``return None``, and ``return`` inserted at the top
              of the function (return early).

Integer constants inside f-strings and docstrings are left alone.  A mutant is *killed*
when the tests fail (or time out), *survives* when they pass; survivors are listed with
their line and the mutated code, for a new test or an equivalence argument
(docs/mutation.md).  Each run forks a child that runs ``pytest.main`` in-process on the
target's tests (pytest and Hypothesis are imported once, in the parent; no bytecode is
written, so the mutated source is always compiled afresh).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

sys.dont_write_bytecode = True

ROOT = Path(__file__).resolve().parents[2]
# The clone's sources, not an editable install's (which would point at another tree).
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])


@dataclass(frozen=True)
class Target:
    """Functions of one source file and the tests that must catch their mutants."""

    path: str
    functions: tuple[str, ...]
    tests: tuple[str, ...]


_RECEIVE_TESTS = (
    "tests/unit/proto/test_receive_paths.py",
    "tests/unit/proto/test_ffp.py",
    "tests/unit/proto/test_ffp_write.py",
    "tests/unit/proto/test_ffp_events.py",
    "tests/unit/proto/test_ffp_stats.py",
    "tests/unit/proto/test_ffp_timers.py",
    "tests/unit/proto/test_ffp_tables.py",
)
_FRAMING_TESTS = (
    "tests/unit/proto/test_receive_paths.py",
    "tests/unit/proto/test_framing.py",
    "tests/unit/proto/test_digest.py",
)
_PDU_TESTS = (*_FRAMING_TESTS, "tests/unit/proto/test_pdu.py")
_CHAP_TESTS = (
    "tests/unit/proto/test_chap_mutants.py",
    "tests/unit/proto/test_chap_openssl.py",
    "tests/unit/proto/test_chap.py",
)
_WRITER_TESTS = (
    "tests/unit/records/test_writer_mutants.py",
    "tests/unit/records/test_fsio_mutants.py",
    "tests/unit/records/test_fsio_faults.py",
    "tests/unit/records/test_records_store.py",
    "tests/unit/records/test_records_safety.py",
    "tests/unit/records/test_records_malformed.py",
    "tests/unit/records/test_records_fileformat.py",
    "tests/unit/records/test_bindings_add.py",
    "tests/unit/records/test_records_symlinks.py",
    "tests/unit/records/test_records_corrupt.py",
)

#: The mutant sets by name: the receive-side checks of proto/ (digests, offsets, DataSN,
#: residuals, ITTs), framing, CHAP, the record writer and its file operations.
TARGETS: dict[str, Target] = {
    "receive": Target(
        "iscsikit/proto/ffp_receive.py",
        tuple(
            f"_Receiver.{name}"
            for name in (
                "get_buffers",
                "buffer_updated",
                "_parse",
                "_check_length",
                "_segment_direct",
                "_on_segment",
                "_dispatch",
                "_data_in_header",
                "_data_in_violation",
                "_data_in_direct",
                "_on_data_in_payload",
                "_on_data_in_tail",
                "_data_in_finished",
            )
        ),
        _RECEIVE_TESTS,
    ),
    "completion": Target(
        "iscsikit/proto/ffp_commands.py",
        (
            "_CommandPath._data_in_done",
            "_CommandPath._scsi_response",
            "_CommandPath._complete_command",
            "_CommandPath._r2t",
        ),
        _RECEIVE_TESTS,
    ),
    "answered": Target(
        "iscsikit/proto/ffp_core.py", ("_ConnectionCore._answered",), _RECEIVE_TESTS
    ),
    "framing": Target(
        "iscsikit/proto/framing.py",
        (
            "PduReader.next_pdu",
            "PduReader.bytes_needed",
            "PduReader._accept_header",
            "PduReader.receive_data",
            "_check_max",
        ),
        _FRAMING_TESTS,
    ),
    "pdu": Target(
        "iscsikit/proto/pdu.py",
        (
            "parse_bhs_lengths",
            "pdu_class_for",
            "pdu_length",
            "verify_header_digest",
            "decode_body",
        ),
        _PDU_TESTS,
    ),
    "digest": Target("iscsikit/proto/digest.py", ("crc32c", "digest_bytes"), _FRAMING_TESTS),
    "chap": Target(
        "iscsikit/proto/chap.py",
        (
            "chap_response",
            "decode_binary",
            "encode_binary",
            "_check_length",
            "_parse_number",
            "parse_chap_identifier",
            "_check_secret",
            "_check_keys",
            "_decode_peer_binary",
            "_identifier_of",
            "_draw",
            "ChapInitiator.respond",
            "ChapInitiator.verify",
            "ChapInitiator._chosen_algorithm",
            "ChapTarget.challenge",
            "ChapTarget.check",
        ),
        _CHAP_TESTS,
    ),
    "writer": Target(
        "iscsikit/records/writer.py",
        (
            "Writer.node_path",
            "Writer.link_path",
            "Writer.link_dir",
            "Writer.discovery_path",
            "Writer.write_file",
            "Writer.add_nodes",
            "Writer._not_replaced",
            "Writer._add_links",
            "Writer.delete_nodes",
            "Writer.update",
            "Writer.rewrite",
        ),
        _WRITER_TESTS,
    ),
    "fsio": Target(
        "iscsikit/records/fsio.py",
        (
            "open_dir",
            "sync_dirs",
            "make_dirs",
            "_make_dirs_below",
            "unlink",
            "WriteBatch._dir_fd",
            "WriteBatch.write",
            "WriteBatch.symlink",
            "WriteBatch.commit",
            "WriteBatch.abort",
        ),
        _WRITER_TESTS,
    ),
}

# -- finding and mutating nodes ------------------------------------------------------------

_FuncDef = ast.FunctionDef | ast.AsyncFunctionDef

_CMP: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.Lt: (ast.GtE, ast.LtE),
    ast.LtE: (ast.Gt, ast.Lt),
    ast.Gt: (ast.LtE, ast.GtE),
    ast.GtE: (ast.Lt, ast.Gt),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
}
_ARITH: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
}


@dataclass(frozen=True)
class Mutant:
    """One mutation: which function, which node (its index in ``ast.walk`` order), how."""

    target: str
    function: str
    node: int
    op: str
    variant: int
    line: int
    code: str  # the mutated node, unparsed (for the report)


def find_function(tree: ast.Module, qualname: str) -> _FuncDef:
    scope: list[ast.stmt] = tree.body
    parts = qualname.split(".")
    for i, part in enumerate(parts):
        for node in scope:
            last = i == len(parts) - 1
            if last and isinstance(node, _FuncDef) and node.name == part:
                return node
            if not last and isinstance(node, ast.ClassDef) and node.name == part:
                scope = node.body
                break
        else:
            raise LookupError(f"{qualname}: no {part!r}")
    raise LookupError(qualname)


def _skipped(func: _FuncDef) -> set[int]:
    """ids of nodes never mutated: docstrings, f-string contents, annotations."""
    skip: set[int] = set()
    for node in ast.walk(func):
        if isinstance(node, ast.JoinedStr) or (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        ):
            skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, ast.arg) and node.annotation is not None:
            skip.update(id(n) for n in ast.walk(node.annotation))
        if isinstance(node, _FuncDef) and node.returns is not None:
            skip.update(id(n) for n in ast.walk(node.returns))
        if isinstance(node, ast.AnnAssign):
            skip.update(id(n) for n in ast.walk(node.annotation))
    return skip


_Make = Callable[[ast.AST], ast.AST]


def _with(**changes: object) -> _Make:
    """A mutation that copies the node with ``changes`` applied."""
    return lambda n: _replace(n, **changes)


def _const(delta: int) -> _Make:
    def make(n: ast.AST) -> ast.AST:
        assert isinstance(n, ast.Constant) and isinstance(n.value, int)
        return ast.Constant(n.value + delta)

    return make


def _negate(n: ast.AST) -> ast.AST:
    return _replace(n, test=ast.UnaryOp(ast.Not(), n.test))  # type: ignore[attr-defined]


def _variants(node: ast.AST, func: _FuncDef) -> list[tuple[str, _Make]]:
    """The mutations possible at ``node``: (operator name, node -> replacement)."""
    out: list[tuple[str, _Make]] = []
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        for new in _CMP.get(type(node.ops[0]), ()):
            out.append(("cmp", _with(ops=[new()])))
    elif isinstance(node, ast.BoolOp):
        out.append(("bool", _with(op=ast.Or() if isinstance(node.op, ast.And) else ast.And())))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        out.append(("not", lambda n: n.operand))  # type: ignore[attr-defined]
    elif isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        out.append(("arith", _with(op=_ARITH[type(node.op)]())))
    elif (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int)
        and not isinstance(node.value, bool)
    ):
        out.append(("const", _const(1)))
        if node.value > 0:
            out.append(("const", _const(-1)))
    elif isinstance(node, ast.Raise):
        out.append(("raise", lambda n: ast.Pass()))
    elif isinstance(node, ast.AugAssign) or (
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
    ):
        out.append(("stmt", lambda n: ast.Pass()))
    elif (
        isinstance(node, ast.Return)
        and node.value is not None
        and not (isinstance(node.value, ast.Constant) and node.value.value is None)
    ):
        out.append(("return", lambda n: ast.Return(ast.Constant(None))))
    if isinstance(node, ast.If | ast.While | ast.IfExp) and not isinstance(node.test, ast.Compare):
        out.append(("cond", _negate))
    if node is func:
        out.append(("return", _return_early))
    return out


def _replace(node: ast.AST, **changes: object) -> ast.AST:
    new = copy.copy(node)
    for key, value in changes.items():
        setattr(new, key, value)
    return new


def _return_early(func: ast.AST) -> ast.AST:
    assert isinstance(func, _FuncDef)
    body = list(func.body)
    at = (
        1
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
        else 0
    )
    return _replace(func, body=[*body[:at], ast.Return(None), *body[at:]])


def _sites(func: _FuncDef) -> Iterator[tuple[int, ast.AST]]:
    skip = _skipped(func)
    for index, node in enumerate(ast.walk(func)):
        if id(node) not in skip:
            yield index, node


def enumerate_mutants(name: str, target: Target) -> list[Mutant]:
    source = (ROOT / target.path).read_text()
    tree = ast.parse(source)
    mutants: list[Mutant] = []
    for qualname in target.functions:
        try:
            func = find_function(tree, qualname)
        except LookupError:
            print(f"warning: {target.path} has no {qualname} (skipped)", file=sys.stderr)
            continue
        for index, node in _sites(func):
            for variant, (op, make) in enumerate(_variants(node, func)):
                new = make(copy.deepcopy(node))
                code = "return (early)" if node is func else ast.unparse(new)
                code = " / ".join(line.strip() for line in code.splitlines())
                line = getattr(node, "lineno", func.lineno)
                mutants.append(Mutant(name, qualname, index, op, variant, line, code[:160]))
    return mutants


def mutated_source(source: str, mutant: Mutant) -> str:
    """The module ``source`` with ``mutant`` applied (``ast.unparse``: comments are lost)."""
    tree = ast.parse(source)
    func = find_function(tree, mutant.function)
    nodes = dict(_sites(func))
    node = nodes[mutant.node]
    _op, make = _variants(node, func)[mutant.variant]
    new = make(copy.deepcopy(node))
    if node is func:
        func.body = new.body  # type: ignore[attr-defined]
    else:
        _swap(tree, node, new)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree)


def _swap(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return
    raise LookupError("node not found")


# -- running -------------------------------------------------------------------------------


def run_tests(tests: tuple[str, ...], timeout: float) -> str:
    """``killed`` / ``survived`` / ``timeout`` for the tests over the current sources."""
    pid = os.fork()
    if pid == 0:  # the child: run pytest in-process, exit with its code
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        import pytest

        code = pytest.main(
            [
                "-x",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:randomly",
                "--no-header",
                "--hypothesis-seed=0",
                "-W",
                "ignore",
                *tests,
            ]
        )
        os._exit(int(code))
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.02)


def run_target(
    name: str, out: Path, only: str | None, limit: int | None, again: Path | None = None
) -> dict[str, object]:
    target = TARGETS[name]
    tests = tuple(t for t in target.tests if (ROOT / t).exists())
    path = ROOT / target.path
    original = path.read_text()
    os.chdir(ROOT)
    import importlib.util

    import hypothesis  # noqa: F401  (imported once, before forking)
    import pytest  # noqa: F401

    spec = importlib.util.find_spec("iscsikit")
    if spec is None or not str(spec.origin).startswith(str(ROOT)):
        raise SystemExit(f"iscsikit would be imported from {spec and spec.origin}, not {ROOT}")

    started = time.monotonic()
    baseline = run_tests(tests, 600)
    if baseline != "survived":
        raise SystemExit(f"{name}: the tests fail on the unmutated source ({baseline})")
    timeout = max(30.0, 5 * (time.monotonic() - started))
    mutants = [m for m in enumerate_mutants(name, target) if only is None or only in m.function]
    if again is not None:  # only the survivors of an earlier run (same source)
        earlier = json.loads((again / f"{name}.json").read_text())
        keys = {(r["function"], r["node"], r["variant"]) for r in earlier["survived"]}
        mutants = [m for m in mutants if (m.function, m.node, m.variant) in keys]
    if limit is not None:
        mutants = mutants[:limit]
    results: list[dict[str, object]] = []
    # A TERM (or INT, which a background shell ignores) ends the run with the file restored.
    signal.signal(signal.SIGTERM, _stop)
    try:
        for i, mutant in enumerate(mutants, 1):
            path.write_text(mutated_source(original, mutant))
            outcome = run_tests(tests, timeout)
            results.append({**asdict(mutant), "outcome": outcome})
            mark = "." if outcome != "survived" else "S"
            print(
                f"{mark} {i}/{len(mutants)} {mutant.function}:{mutant.line} {mutant.op} "
                f"{mutant.code[:70]!r} -> {outcome}",
                flush=True,
            )
    finally:
        path.write_text(original)
    summary = {
        "target": name,
        "path": target.path,
        "tests": list(tests),
        "mutants": len(results),
        "killed": sum(r["outcome"] == "killed" for r in results),
        "timeout": sum(r["outcome"] == "timeout" for r in results),
        "survived": [r for r in results if r["outcome"] == "survived"],
        "seconds": round(time.monotonic() - started),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({**summary, "results": results}, indent=1))
    return summary


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target",
        action="append",
        choices=sorted(TARGETS),
        help="a mutant set (repeatable; default: all)",
    )
    parser.add_argument("--function", help="only functions whose name contains this")
    parser.add_argument("--limit", type=int, help="at most this many mutants per target")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--out", type=Path, default=Path("/tmp/iscsikit-mutation"))
    parser.add_argument(
        "--again",
        type=Path,
        metavar="DIR",
        help="run only the survivors recorded in DIR/<set>.json",
    )
    args = parser.parse_args(argv)
    names = args.target or sorted(TARGETS)
    if args.list:
        for name in names:
            for m in enumerate_mutants(name, TARGETS[name]):
                print(f"{name} {m.function}:{m.line} {m.op} {m.code[:90]}")
        return 0
    status = 0
    for name in names:
        s = run_target(name, args.out, args.function, args.limit, args.again)
        survived = s["survived"]
        assert isinstance(survived, list)
        print(
            f"== {name}: {s['mutants']} mutants, {s['killed']} killed, {s['timeout']} "
            f"timed out, {len(survived)} survived ({s['seconds']} s)"
        )
        for r in survived:
            print(f"   SURVIVED {r['function']}:{r['line']} {r['op']} {r['code']}")
        status = status or (1 if survived else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
