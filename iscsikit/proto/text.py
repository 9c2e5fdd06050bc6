"""The key=value text codec of Login and Text PDUs (RFC 7143 §6.1, §11.10, §11.12).

This module owns the bytes <-> ``[(key, value), ...]`` mapping of a data segment, the
joining of a logical text data segment (LTDS) sent across several PDUs with the C bit
(:class:`TextAssembler`), and the splitting of a long text for sending
(:func:`split_text`).  It knows value *lengths* from :mod:`iscsikit.proto.keys` but
nothing about negotiation: :mod:`iscsikit.proto.negotiation` interprets the pairs.  No I/O.

Errors: malformed text from the peer raises :class:`~iscsikit.errors.RemoteProtocolError`
with ``reject_reason`` 0x04 (Protocol Error, RFC 7143 §11.17.1).  That reason only goes
on the wire for a Text Request in Full Feature Phase (a target answers it with a Reject
PDU).  During login there is no Reject: an initiator drops the connection and a target
answers with Login status 0x0200 "initiator error" (RFC 7143 §6.2, §11.13.5); the login
machine maps the exception accordingly.  Caller mistakes raise
:class:`~iscsikit.errors.LocalProtocolError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from iscsikit.errors import LocalProtocolError, RemoteProtocolError
from iscsikit.proto.constants import RejectReason
from iscsikit.proto.keys import MAX_KEY_LENGTH, value_limit

#: §6.1 standard-label characters: letters, digits, dot, minus, plus, commercial at,
#: underscore.  The RFC asks for a leading capital letter, but RFC 7144's own key
#: ``iSCSIProtocolLevel`` starts in lower case, so any letter is accepted.  Public
#: extension keys are ``X#`` followed by their IANA-registered string (§13.24).
_KEY = re.compile(r"X#[A-Za-z0-9.+@_-]+|[A-Za-z][A-Za-z0-9.+@_-]*")

#: RFC 7143 §6.1: "Any iSCSI target or initiator MUST support receiving at least 8192
#: bytes of key=value data in a negotiation sequence", and 64 KB when an authentication
#: method needs long items.  A limit keeps a hostile peer from making us buffer forever.
DEFAULT_MAX_TEXT = 65536


def is_valid_key(name: str) -> bool:
    """Whether ``name`` is a syntactically valid key name (§6.1, at most 63 bytes)."""
    return len(name) <= MAX_KEY_LENGTH and _KEY.fullmatch(name) is not None


def _remote(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, reject_reason=RejectReason.PROTOCOL_ERROR)


def _show(text: str | bytes) -> str:
    """A short printable form of peer data for error messages."""
    return repr(text[:40]) + ("..." if len(text) > 40 else "")


def encode_text(pairs: Iterable[tuple[str, str]]) -> bytes:
    """Encode ``key=value\\0`` for each pair, UTF-8 (RFC 7143 §6.1).

    Raises LocalProtocolError for an invalid key name, a value holding a NUL, or a value
    longer than the key allows (:func:`iscsikit.proto.keys.value_limit`).
    """
    out = bytearray()
    for key, value in pairs:
        if not is_valid_key(key):
            raise LocalProtocolError(f"invalid key name {_show(key)} (RFC 7143 §6.1)")
        if "\0" in value:
            raise LocalProtocolError(f"value of {key} contains a NUL character")
        raw = value.encode("utf-8")
        if len(raw) > value_limit(key):
            raise LocalProtocolError(
                f"value of {key} is {len(raw)} bytes, more than its {value_limit(key)}"
            )
        out += key.encode("ascii")
        out += b"="
        out += raw
        out += b"\0"
    return bytes(out)


def decode_text(data: bytes) -> list[tuple[str, str]]:
    """Decode a complete text data segment into ``(key, value)`` pairs, in order.

    Every pair must end with a NUL (§6.1); extra NULs at the very end (padding) are
    tolerated.  A pair without ``=``, an empty or invalid key, invalid UTF-8, an empty
    pair in the middle, or an over-long key or value raises RemoteProtocolError.  The
    value is everything after the *first* ``=`` and may itself contain ``=``.
    """
    end = len(data)
    while end and data[end - 1] == 0:
        end -= 1
    if end == 0:
        return []
    if end == len(data):
        raise _remote(f"text does not end with a NUL delimiter: ...{_show(data[-40:])}")
    pairs: list[tuple[str, str]] = []
    for item in data[:end].split(b"\0"):
        if not item:
            raise _remote("empty key=value pair (two NUL delimiters in a row)")
        raw_key, sep, raw_value = item.partition(b"=")
        if not sep:
            raise _remote(f"key=value pair without '=': {_show(item)}")
        if not raw_key:
            raise _remote(f"key=value pair with an empty key: {_show(item)}")
        if len(raw_key) > MAX_KEY_LENGTH:
            raise _remote(f"key name longer than {MAX_KEY_LENGTH} bytes: {_show(raw_key)}")
        key = raw_key.decode("ascii", errors="replace")
        if not is_valid_key(key):
            raise _remote(f"invalid key name {_show(raw_key)} (RFC 7143 §6.1)")
        if len(raw_value) > value_limit(key):
            raise _remote(
                f"value of {key} is {len(raw_value)} bytes, more than its {value_limit(key)}"
            )
        try:
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            raise _remote(f"value of {key} is not valid UTF-8: {_show(raw_value)}") from None
        pairs.append((key, value))
    return pairs


class TextAssembler:
    """Joins the data segments of Login/Text PDUs sent with the C (continue) bit.

    A key=value pair may be split anywhere across PDUs (RFC 7143 §6.1, §11.10.2,
    §11.12.2); the text is only decoded once the last part (C=0) has arrived.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_TEXT) -> None:
        if max_bytes < 1:
            raise LocalProtocolError(f"max_bytes must be positive, not {max_bytes}")
        self.max_bytes = max_bytes
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held from earlier C=1 parts."""
        return len(self._buffer)

    def feed(self, data: bytes, cont: bool) -> list[tuple[str, str]] | None:
        """Add one PDU's data segment; the decoded pairs once ``cont`` is False, else None.

        Raises RemoteProtocolError (and forgets what it held) when the joined text would
        exceed ``max_bytes`` or the complete text does not decode.
        """
        if len(self._buffer) + len(data) > self.max_bytes:
            total = len(self._buffer) + len(data)
            self.reset()
            raise _remote(f"text of {total}+ bytes exceeds the {self.max_bytes}-byte limit")
        self._buffer += data
        if cont:
            return None
        text = bytes(self._buffer)
        self.reset()
        return decode_text(text)

    def reset(self) -> None:
        """Forget any partial text (e.g. after a negotiation reset or an error)."""
        self._buffer.clear()


def split_text(data: bytes, max_segment: int) -> list[bytes]:
    """Cut an encoded text into data segments of at most ``max_segment`` bytes.

    Every chunk but the last goes out with the C bit set (RFC 7143 §6.1).  An empty
    text gives one empty segment, so the caller always has one PDU to send.
    ``max_segment`` is the receiver's MaxRecvDataSegmentLength (8192 during login).
    """
    if max_segment < 1:
        raise LocalProtocolError(f"max_segment must be positive, not {max_segment}")
    if not data:
        return [b""]
    return [data[i : i + max_segment] for i in range(0, len(data), max_segment)]


__all__ = [
    "DEFAULT_MAX_TEXT",
    "TextAssembler",
    "decode_text",
    "encode_text",
    "is_valid_key",
    "split_text",
]
