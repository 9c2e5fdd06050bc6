"""The sans-I/O path set: policies, ALUA ranking, back-off, the same-LU check."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from iscsikit.errors import ConnectionFailedError, InvalidParameterError
from iscsikit.lun.pathset import PathState, Selector, candidates, check_same_lu
from iscsikit.scsi.vpd import Designator

NAA = Designator(0, 1, False, 0, 3, bytes.fromhex("6001405abcdef0123456789abcdef012"))
OTHER = Designator(0, 1, False, 0, 3, bytes.fromhex("6001405abcdef0123456789abcdef099"))


@dataclass
class _Geometry:
    block_size: int = 512
    size: int = 1 << 20


class _Path(PathState):
    geometry = _Geometry()


def _paths(n: int, alua: list[int] | None = None) -> list[_Path]:
    paths = [_Path(index=i, name=f"p{i}", identity=NAA) for i in range(n)]
    for p, state in zip(paths, alua or [], strict=False):
        p.alua = state
    return paths


def _picks(selector: Selector, paths: list[_Path], n: int) -> list[int]:
    out = []
    for _ in range(n):
        p = selector.pick(paths, set())
        assert p is not None
        out.append(p.index)
        p.outstanding -= 1
    return out


def test_round_robin_failover_queue_depth() -> None:
    paths = _paths(3)
    assert _picks(Selector("round-robin"), paths, 6) == [0, 1, 2, 0, 1, 2]
    failover = Selector("failover")
    assert _picks(failover, paths, 3) == [0, 0, 0]
    paths[0].fail(ConnectionFailedError("x"), 0.0, 1.0, 4.0)
    failover.forget(0)
    assert _picks(failover, paths, 2) == [1, 1]
    paths[0].healthy = True
    assert _picks(failover, paths, 1) == [1]  # failover stays where it is
    depth = Selector("queue-depth")
    paths[1].outstanding = 2
    assert _picks(depth, paths, 4) == [0, 2, 0, 2]
    with pytest.raises(InvalidParameterError):
        Selector("random")  # type: ignore[arg-type]


def test_alua_rank_and_exclusion() -> None:
    # non-optimized, optimized, standby, unavailable
    paths = _paths(4, alua=[1, 0, 2, 3])
    assert [p.index for p in candidates(paths)] == [1]
    assert [p.state for p in paths] == ["active", "active", "standby", "standby"]
    paths[1].healthy = False
    assert [p.index for p in candidates(paths)] == [0]
    paths[0].healthy = False
    assert candidates(paths) == []  # standby / unavailable are never used
    assert Selector("round-robin").pick(paths, set()) is None
    assert [p.index for p in candidates(paths, alua=False)] == [2, 3]


def test_backoff_doubles_and_revival_resets() -> None:
    (p,) = _paths(1)
    p.fail(ConnectionFailedError("down"), 10.0, 1.0, 4.0)
    retry = [p.retry_at]
    for now in itertools.count(11):
        if len(retry) == 5:
            break
        assert not p.revived(False, float(now), 1.0, 4.0)
        retry.append(p.retry_at - now)
    assert retry == [11.0, 2.0, 4.0, 4.0, 4.0]
    assert p.state == "failed" and p.info().last_error == "down"
    assert p.revived(True, 20.0, 1.0, 4.0) and p.state == "active" and p.backoff == 0


def test_same_lu_check() -> None:
    check_same_lu(_paths(2))
    paths = _paths(2)
    paths[1].identity = OTHER
    with pytest.raises(InvalidParameterError, match="not paths of one LU"):
        check_same_lu(paths)
    paths[1].identity = None
    with pytest.raises(InvalidParameterError, match="no identifier"):
        check_same_lu(paths)
