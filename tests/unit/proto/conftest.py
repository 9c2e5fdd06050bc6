"""Shared test data for the PDU codec tests: golden vectors and Hypothesis strategies.

* ``vector`` parameters: every ``vectors/*.vec`` file (see ``vectors/README``), loaded
  once and handed to any test that takes a ``vector`` argument.
* ``pdu_strategies`` fixture: Hypothesis strategies producing valid PDUs of any class,
  with every field drawn from the full range its wire field allows.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from iscsikit.proto.constants import TARGET_OPCODES
from iscsikit.proto.pdu import (
    PDU_TYPES,
    DataIn,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    Pdu,
    ScsiResponse,
    TextRequest,
    TextResponse,
)

VECTOR_DIR = Path(__file__).parent / "vectors"
CLASSES_BY_NAME = {cls.__name__: cls for cls in PDU_TYPES.values()}


@dataclass(frozen=True)
class Vector:
    """One golden vector file: the wire bytes and the PDU they must decode to."""

    name: str
    raw: bytes
    header_digest: bool
    data_digest: bool
    cls: type[Pdu]
    fields: dict[str, Any]
    captured: bool  # from a real peer (tgtd / libiscsi), not assembled by hand

    def expected(self) -> Pdu:
        return self.cls(**self.fields)


def parse_vector(path: Path) -> Vector:
    """Parse the ``.vec`` format: ``# comments``, ``key = value`` settings, then the
    ``[bytes]`` section (hex, whitespace ignored) and the ``[fields]`` section
    (``name = python literal``)."""
    settings: dict[str, str] = {}
    hex_lines: list[str] = []
    fields: dict[str, Any] = {}
    section = ""
    captured = False
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            captured = captured or line.startswith("# Captured")
            continue
        if not line.strip():
            continue
        if line.startswith("["):
            section = line.strip()
            continue
        if section == "[bytes]":
            hex_lines.append(line)
            continue
        key, _, value = line.partition(" = ")
        if section == "[fields]":
            fields[key] = ast.literal_eval(value)
        else:
            settings[key] = value
    return Vector(
        name=path.stem,
        raw=bytes.fromhex("".join(hex_lines)),
        header_digest=settings["header_digest"] == "True",
        data_digest=settings["data_digest"] == "True",
        cls=CLASSES_BY_NAME[settings["type"]],
        fields=fields,
        captured=captured,
    )


VECTORS = [parse_vector(path) for path in sorted(VECTOR_DIR.glob("*.vec"))]


@pytest.fixture(scope="session")
def all_vectors() -> list[Vector]:
    return VECTORS


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "vector" in metafunc.fixturenames:
        metafunc.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])


# --- Hypothesis strategies ---------------------------------------------------------

_U8 = st.integers(0, 0xFF)
_U16 = st.integers(0, 0xFFFF)
_U32 = st.integers(0, 0xFFFF_FFFF)
# Tags and sequence numbers: the edges matter most (0, 0xffffffff, wrap-around).
_U32_EDGY = st.one_of(st.sampled_from([0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF]), _U32)
_U64 = st.integers(0, 0xFFFF_FFFF_FFFF_FFFF)

#: Field widths that are not 32 bits, by field name (any class) ...
_WIDTH_BY_NAME: dict[str, st.SearchStrategy[int]] = {
    "lun": _U64,
    "csg": st.integers(0, 3),
    "nsg": st.integers(0, 3),
    "attr": st.integers(0, 7),
    "function": st.integers(0, 0x7F),
    "type": st.integers(0, 0x0F),
    "reason": _U8,
    "response": _U8,
    "status": _U8,
    "version_max": _U8,
    "version_min": _U8,
    "version_active": _U8,
    "status_class": _U8,
    "status_detail": _U8,
    "async_event": _U8,
    "async_vcode": _U8,
    "tsih": _U16,
    "cid": _U16,
    "time2wait": _U16,
    "time2retain": _U16,
    "parameter1": _U16,
    "parameter2": _U16,
    "parameter3": _U16,
}
#: ... and by (class, field) where a name means different widths.
_WIDTH_BY_CLASS: dict[tuple[type[Pdu], str], st.SearchStrategy[int]] = {
    (LogoutRequest, "reason"): st.integers(0, 0x7F),
}

_DATA = st.one_of(
    st.binary(max_size=64),
    st.binary(min_size=65, max_size=2048),
)


def _field_strategy(cls: type[Pdu], field: dataclasses.Field[Any]) -> st.SearchStrategy[Any]:
    name = field.name
    if name == "data":
        return _DATA if cls.DATA_ALLOWED else st.just(b"")
    if name == "isid":
        return st.binary(min_size=6, max_size=6)
    if name == "cdb":
        # A decoded CDB is never shorter than the 16 BHS bytes (short ones are padded).
        return st.one_of(
            st.binary(min_size=16, max_size=16),
            st.binary(min_size=17, max_size=260),
        )
    if name == "bidi_read_length":
        return st.none() | _U32
    if field.type in ("bool", bool):
        return st.booleans()
    strategy = _WIDTH_BY_CLASS.get((cls, name))
    if strategy is None:
        strategy = _WIDTH_BY_NAME.get(name, _U32_EDGY)
    return strategy


def _valid(pdu: Pdu) -> bool:
    """The few cross-field rules of RFC 7143 §11 the codec enforces both ways."""
    if isinstance(pdu, LoginRequest | LoginResponse):
        return not (pdu.transit and pdu.cont)
    if isinstance(pdu, TextRequest | TextResponse):
        return not (pdu.final and pdu.cont)
    if isinstance(pdu, ScsiResponse):
        return not (pdu.overflow and pdu.underflow) and not (
            pdu.bidi_overflow and pdu.bidi_underflow
        )
    if isinstance(pdu, DataIn):
        return pdu.final or not pdu.status_present
    return True


def pdus_of(cls: type[Pdu]) -> st.SearchStrategy[Pdu]:
    """Valid PDUs of class *cls* with every field drawn from its full range."""
    kwargs = {f.name: _field_strategy(cls, f) for f in dataclasses.fields(cls)}
    return st.builds(cls, **kwargs).filter(_valid)


ALL_CLASSES = sorted(PDU_TYPES.values(), key=lambda cls: cls.opcode)
TARGET_CLASSES = [cls for cls in ALL_CLASSES if cls.opcode in TARGET_OPCODES]
INITIATOR_CLASSES = [cls for cls in ALL_CLASSES if cls.opcode not in TARGET_OPCODES]


class PduStrategies:
    """What the ``pdu_strategies`` fixture hands out."""

    of = staticmethod(pdus_of)
    any_target = st.one_of([pdus_of(cls) for cls in TARGET_CLASSES])
    any_initiator = st.one_of([pdus_of(cls) for cls in INITIATOR_CLASSES])


@pytest.fixture(scope="session")
def pdu_strategies() -> type[PduStrategies]:
    return PduStrategies
