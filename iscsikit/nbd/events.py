"""Events the NBD server protocol object hands to its I/O layer.

Frozen, slotted dataclasses named in the past tense (h11 / wsproto style).  Handshake events
are informational: the protocol object answers options itself and queues the reply bytes in
:meth:`~iscsikit.nbd.protocol.NbdServerProtocol.data_to_send`.  Transmission events are the
work the I/O layer must do and answer with
:meth:`~iscsikit.nbd.protocol.NbdServerProtocol.reply`, in any order (proto.md,
"Transmission": replies need not be sent in the order of the requests).
"""

from __future__ import annotations

from dataclasses import dataclass

from iscsikit.nbd.constants import Errno, TransmissionFlag


@dataclass(frozen=True, slots=True)
class Export:
    """What a server offers under one name, with the block size constraints it advertises.

    ``min_block`` / ``preferred_block`` / ``max_block`` are NBD_INFO_BLOCK_SIZE: powers of two
    (``min_block`` at most 64 KiB), ``max_block`` a multiple of ``min_block``.  ``max_block`` is
    also the largest READ / WRITE the protocol object accepts.  ``can_trim`` says whether
    NBD_FLAG_SEND_TRIM is advertised (and NBD_CMD_TRIM accepted): only when the device below
    can deallocate.
    """

    name: str
    size: int
    read_only: bool = False
    description: str = ""
    min_block: int = 1
    preferred_block: int = 4096
    max_block: int = 32 * 1024 * 1024
    can_trim: bool = True


@dataclass(frozen=True, slots=True)
class OptionRequested:
    """The client sent option ``option`` (an :class:`~iscsikit.nbd.constants.Option` value,
    or an unknown number) with ``length`` bytes of data; ``reply`` is the final option
    reply type the protocol queued (``None`` for NBD_OPT_EXPORT_NAME, which has none)."""

    option: int
    length: int
    reply: int | None


@dataclass(frozen=True, slots=True)
class ExportChosen:
    """The handshake is over: transmission of ``export`` starts with these flags."""

    export: Export
    flags: TransmissionFlag
    structured_replies: bool


@dataclass(frozen=True, slots=True)
class HandshakeAborted:
    """The client sent NBD_OPT_ABORT: send :meth:`data_to_send` (the ACK), then close."""


@dataclass(frozen=True, slots=True)
class ReadRequested:
    handle: int
    offset: int
    length: int
    flags: int


@dataclass(frozen=True, slots=True)
class WriteRequested:
    handle: int
    offset: int
    data: bytes
    fua: bool


@dataclass(frozen=True, slots=True)
class FlushRequested:
    handle: int


@dataclass(frozen=True, slots=True)
class TrimRequested:
    handle: int
    offset: int
    length: int
    fua: bool


@dataclass(frozen=True, slots=True)
class WriteZeroesRequested:
    """NBD_CMD_WRITE_ZEROES; ``may_unmap`` is false when the client set NBD_CMD_FLAG_NO_HOLE."""

    handle: int
    offset: int
    length: int
    fua: bool
    may_unmap: bool


@dataclass(frozen=True, slots=True)
class DisconnectRequested:
    """NBD_CMD_DISC: finish the requests in flight, then close (no reply)."""


@dataclass(frozen=True, slots=True)
class RequestRejected:
    """A request the protocol object answered itself with ``error`` (bad bounds, flags,
    command, read-only export...); the error reply is already in :meth:`data_to_send`."""

    handle: int
    command: int
    error: Errno
    reason: str


HandshakeEvent = OptionRequested | ExportChosen | HandshakeAborted
RequestEvent = (
    ReadRequested | WriteRequested | FlushRequested | TrimRequested | WriteZeroesRequested
)
Event = HandshakeEvent | RequestEvent | DisconnectRequested | RequestRejected

__all__ = [
    "DisconnectRequested",
    "Event",
    "Export",
    "ExportChosen",
    "FlushRequested",
    "HandshakeAborted",
    "HandshakeEvent",
    "OptionRequested",
    "ReadRequested",
    "RequestEvent",
    "RequestRejected",
    "TrimRequested",
    "WriteRequested",
    "WriteZeroesRequested",
]
