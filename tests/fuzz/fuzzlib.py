"""Shared helpers of the atheris harnesses in tests/fuzz (see README.md there).

Nothing here imports iscsikit: a harness imports the code under test inside
``atheris.instrument_imports()``, and a module imported before that block would run
uninstrumented (no coverage feedback from it).
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import atheris
import crc32c as _crc32c
from atheris import instrument_bytecode as _ib

#: tests/fuzz/corpus/<parser>/: the committed seed corpus of each harness.
CORPUS = Path(__file__).resolve().parent / "corpus"

#: The harnesses, by parser name (module tests/fuzz/fuzz_<name>.py).
HARNESSES = (
    "pdu",
    "ffp",
    "login",
    "text",
    "sendtargets",
    "records",
    "iscsid_conf",
    "cli",
    "ipc",
    "nbd",
    "netlink",
    "isns",
    "cli_modes",
)

_BHS = 48
_LENGTHS = struct.Struct(">BxxxI")


def _fixed_adjust(self: _ib.Instruction, changed_offset: float, size: int, keep_ref: bool) -> None:
    """atheris 2.3.0's ``Instruction.adjust`` with relative jump arguments recomputed from
    the (moved) offset and reference every time.

    2.3.0 updates the argument of a backward jump only in some of the cases where its
    distance changes (google/atheris#57, fixed upstream after 2.3.0 by #64), so under
    Python 3.11 a ``while`` loop's ``continue`` could land one instruction past the loop
    head: iscsikit.nbd.protocol's ``next_event`` then read an attribute of the wrong
    stack value (a false finding in the instrumented run only).
    """
    offset, reference = self.offset, self.reference
    if offset < changed_offset < offset + 1:
        # This instruction grew (EXTENDED_ARG): what follows it moved, it did not.
        if reference is not None and reference > offset:
            self.reference = reference + size
    else:
        if changed_offset <= offset:
            self.offset += size
        if reference is not None and not keep_ref and changed_offset <= reference:
            self.reference = reference + size
    if self.reference is None:
        return
    if self._is_relative:
        end = self.offset + self.get_size()
        self.arg = _ib.add_bytes_to_jump_arg(0, abs(self.reference - end))
    else:
        self.arg = _ib.add_bytes_to_jump_arg(0, self.reference)


_ib.Instruction.adjust = _fixed_adjust  # type: ignore[method-assign]


def as_program() -> bool:
    """Whether a harness runs as the program (under libFuzzer), not imported by pytest:
    process-wide settings (environment, instrumentation) are made only then."""
    return Path(sys.argv[0]).name.startswith("fuzz_")


def instrument() -> contextlib.AbstractContextManager[object]:
    """Instrument the iscsikit modules imported in this block, when a harness runs as the
    program; in any other process (pytest replaying the corpus) do nothing: the modules
    run as they do in production."""
    if as_program():
        return atheris.instrument_imports(include=["iscsikit", "iscsikit_drivers"])
    return contextlib.nullcontext()


def main(test_one_input: Callable[[bytes], None]) -> None:
    """Run *test_one_input* under libFuzzer with this process's arguments."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


def split(data: bytes, sizes: bytes) -> Iterator[bytes]:
    """*data* cut into chunks whose lengths (1..256) the bytes of *sizes* choose, cycling;
    the last chunk is the rest.  Streams must parse the same however they arrive."""
    pos = 0
    i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)] + 1 if sizes else len(data)
        yield data[pos : pos + n]
        pos += n
        i += 1


def with_digests(stream: bytes, *, header: bool, data: bool) -> bytes:
    """Insert correct CRC32C digests (RFC 7143 §11.2) into a stream of digest-less PDUs,
    so that mutated headers and payloads get past the digest checks to the decoders."""
    out = bytearray()
    pos = 0
    while len(stream) - pos >= _BHS:
        _, word = _LENGTHS.unpack_from(stream, pos)
        ahs = (word >> 24) * 4
        dsl = word & 0xFFFFFF
        head = stream[pos : pos + _BHS + ahs]
        out += head
        if header:
            out += struct.pack("<I", _crc32c.crc32c(head))
        pos += len(head)
        padded = dsl + (-dsl & 3)
        segment = stream[pos : pos + padded]
        out += segment
        pos += len(segment)
        if data and dsl:
            out += struct.pack("<I", _crc32c.crc32c(segment))
    out += stream[pos:]
    return bytes(out)


def corpus_files(name: str) -> list[Path]:
    """The committed seed inputs of harness *name*, sorted."""
    directory = CORPUS / name
    return sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []


def scratch_root() -> Path:
    """A private directory for harnesses that need a file-system root (ISCSIKIT_ROOT),
    removed when the process exits."""
    path = Path(tempfile.mkdtemp(prefix="iscsikit-fuzz-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
