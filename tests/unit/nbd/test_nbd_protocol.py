"""The sans-I/O NBD server against hand-built byte vectors (proto.md layouts)."""

from __future__ import annotations

import struct

import pytest

from iscsikit.errors import LocalProtocolError, RemoteProtocolError
from iscsikit.nbd.constants import (
    Command,
    CommandFlag,
    Errno,
    Info,
    Option,
    OptionReply,
    TransmissionFlag,
)
from iscsikit.nbd.events import (
    DisconnectRequested,
    Event,
    Export,
    ExportChosen,
    FlushRequested,
    HandshakeAborted,
    OptionRequested,
    ReadRequested,
    RequestRejected,
    TrimRequested,
    WriteRequested,
    WriteZeroesRequested,
)
from iscsikit.nbd.protocol import NbdServerProtocol, State

SIZE = 1 << 20
EXPORT = Export("disk", SIZE, description="a test disk", max_block=65536)
OPT_MAGIC = bytes.fromhex("0003e889045565a9")
# HAS_FLAGS | SEND_FLUSH | SEND_FUA | SEND_TRIM | SEND_WRITE_ZEROES
FLAGS = 0x0001 | 0x0004 | 0x0008 | 0x0020 | 0x0040


def option(opt: int, data: bytes = b"") -> bytes:
    return b"IHAVEOPT" + struct.pack(">II", opt, len(data)) + data


def go_data(name: str, *infos: int) -> bytes:
    raw = name.encode()
    return struct.pack(">I", len(raw)) + raw + struct.pack(f">H{len(infos)}H", len(infos), *infos)


def request(cmd: int, handle: int, offset: int = 0, length: int = 0, flags: int = 0) -> bytes:
    return bytes.fromhex("25609513") + struct.pack(">HHQQI", flags, cmd, handle, offset, length)


def opt_reply(opt: int, rep: int, data: bytes = b"") -> bytes:
    return OPT_MAGIC + struct.pack(">III", opt, rep, len(data)) + data


def simple(handle: int, error: int = 0, data: bytes = b"") -> bytes:
    return bytes.fromhex("67446698") + struct.pack(">IQ", error, handle) + data


def chunk(handle: int, kind: int, payload: bytes, flags: int = 1) -> bytes:
    return (
        bytes.fromhex("668e33ef")
        + struct.pack(">HHQI", flags, kind, handle, len(payload))
        + (payload)
    )


def events(proto: NbdServerProtocol) -> list[Event]:
    out = []
    while (event := proto.next_event()) is not None:
        out.append(event)
    return out


def feed(proto: NbdServerProtocol, data: bytes) -> list[Event]:
    proto.receive_data(data)
    return events(proto)


def started(export: Export = EXPORT, client_flags: int = 3, **kw: bool) -> NbdServerProtocol:
    proto = NbdServerProtocol([export], **kw)
    proto.greeting()
    assert feed(proto, struct.pack(">I", client_flags)) == []
    return proto


def transmitting(export: Export = EXPORT, *, structured: bool = False) -> NbdServerProtocol:
    proto = started(export)
    if structured:
        feed(proto, option(Option.STRUCTURED_REPLY))
    [chosen] = feed(proto, option(Option.GO, go_data(export.name)))
    assert isinstance(chosen, ExportChosen)
    proto.data_to_send()
    return proto


# --- handshake -----------------------------------------------------------------------


def test_greeting_is_nbdmagic_ihaveopt_fixed_newstyle_no_zeroes() -> None:
    proto = NbdServerProtocol([EXPORT])
    assert proto.greeting() == b"NBDMAGIC" + b"IHAVEOPT" + b"\x00\x03"
    with pytest.raises(LocalProtocolError):
        proto.greeting()


def test_unknown_client_flags_drop_the_connection_and_stay_an_error() -> None:
    proto = NbdServerProtocol([EXPORT])
    proto.greeting()
    proto.receive_data(b"\x00\x00\x00\x04")
    with pytest.raises(RemoteProtocolError, match="client flags"):
        proto.next_event()
    assert proto.state is State.ERROR
    with pytest.raises(RemoteProtocolError):
        proto.receive_data(b"x")


def test_export_name_with_no_zeroes() -> None:
    proto = started()
    [event] = feed(proto, option(Option.EXPORT_NAME, b"disk"))
    assert event == ExportChosen(EXPORT, FLAGS, False)
    assert proto.data_to_send() == struct.pack(">QH", SIZE, FLAGS)
    assert proto.state is State.TRANSMISSION


def test_export_name_without_no_zeroes_sends_124_zeroes() -> None:
    proto = started(client_flags=1)
    feed(proto, option(Option.EXPORT_NAME, b""))  # the default export
    assert proto.data_to_send() == struct.pack(">QH", SIZE, FLAGS) + bytes(124)


def test_export_name_for_an_unknown_export_terminates() -> None:
    proto = started()
    proto.receive_data(option(Option.EXPORT_NAME, b"nope"))
    with pytest.raises(RemoteProtocolError, match="unknown export"):
        proto.next_event()


def test_abort_is_acknowledged_and_ends_the_session() -> None:
    proto = started()
    assert feed(proto, option(Option.ABORT)) == [HandshakeAborted()]
    assert proto.data_to_send() == opt_reply(Option.ABORT, OptionReply.ACK)
    assert proto.state is State.CLOSED
    with pytest.raises(RemoteProtocolError):
        proto.receive_data(option(Option.LIST))


def test_list() -> None:
    other = Export("second", 512)
    proto = NbdServerProtocol([EXPORT, other])
    proto.greeting()
    proto.receive_data(b"\x00\x00\x00\x03")
    [event] = feed(proto, option(Option.LIST))
    assert event == OptionRequested(Option.LIST, 0, OptionReply.ACK)
    assert proto.data_to_send() == (
        opt_reply(Option.LIST, OptionReply.SERVER, b"\x00\x00\x00\x04disk")
        + opt_reply(Option.LIST, OptionReply.SERVER, b"\x00\x00\x00\x06second")
        + opt_reply(Option.LIST, OptionReply.ACK)
    )


def test_list_with_data_is_invalid() -> None:
    proto = started()
    [event] = feed(proto, option(Option.LIST, b"x"))
    assert event == OptionRequested(Option.LIST, 1, OptionReply.ERR_INVALID)
    assert proto.data_to_send() == opt_reply(Option.LIST, OptionReply.ERR_INVALID, b"has data")


def test_go_sends_export_name_description_block_size_then_ack() -> None:
    proto = started()
    data = go_data("disk", Info.NAME, Info.DESCRIPTION, Info.BLOCK_SIZE)
    [event] = feed(proto, option(Option.GO, data))
    assert event == ExportChosen(EXPORT, FLAGS, False)
    assert proto.data_to_send() == (
        opt_reply(Option.GO, OptionReply.INFO, struct.pack(">HQH", Info.EXPORT, SIZE, FLAGS))
        + opt_reply(Option.GO, OptionReply.INFO, b"\x00\x01disk")
        + opt_reply(Option.GO, OptionReply.INFO, b"\x00\x02a test disk")
        + opt_reply(Option.GO, OptionReply.INFO, struct.pack(">HIII", 3, 1, 4096, 65536))
        + opt_reply(Option.GO, OptionReply.ACK)
    )
    assert proto.state is State.TRANSMISSION


def test_info_stays_in_option_haggling_then_go() -> None:
    proto = started()
    [event] = feed(proto, option(Option.INFO, go_data("disk")))
    assert event == OptionRequested(Option.INFO, 10, OptionReply.ACK)
    out = proto.data_to_send()
    assert out.startswith(
        opt_reply(Option.INFO, OptionReply.INFO, struct.pack(">HQH", 0, SIZE, FLAGS))
    )
    assert out.endswith(opt_reply(Option.INFO, OptionReply.ACK))
    assert proto.state is State.OPTIONS
    assert isinstance(feed(proto, option(Option.GO, go_data("")))[0], ExportChosen)


@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (go_data("missing"), OptionReply.ERR_UNKNOWN),
        (b"\x00\x00\x00\x10disk\x00\x00", OptionReply.ERR_INVALID),  # name length too big
        (go_data("disk", 1)[:-1], OptionReply.ERR_INVALID),  # info count mismatch
        (b"\x00\x00", OptionReply.ERR_INVALID),
        (b"\x00\x00\x00\x02\xff\xfe\x00\x00", OptionReply.ERR_INVALID),  # not UTF-8
    ],
)
def test_go_errors_keep_option_haggling(data: bytes, reply: OptionReply) -> None:
    proto = started()
    [event] = feed(proto, option(Option.GO, data))
    assert event == OptionRequested(Option.GO, len(data), reply)
    out = proto.data_to_send()
    assert out[:16] == OPT_MAGIC + struct.pack(">II", Option.GO, reply)
    assert len(out) == 20 + struct.unpack(">I", out[16:20])[0]  # an error message follows
    assert proto.state is State.OPTIONS


def test_structured_replies_negotiated_adds_df() -> None:
    proto = started()
    [event] = feed(proto, option(Option.STRUCTURED_REPLY))
    assert event == OptionRequested(Option.STRUCTURED_REPLY, 0, OptionReply.ACK)
    assert proto.data_to_send() == opt_reply(Option.STRUCTURED_REPLY, OptionReply.ACK)
    [chosen] = feed(proto, option(Option.EXPORT_NAME, b"disk"))
    assert chosen == ExportChosen(EXPORT, FLAGS | 0x80, True)
    assert proto.structured_replies


def test_structured_replies_can_be_refused() -> None:
    proto = started(structured_replies=False)
    [event] = feed(proto, option(Option.STRUCTURED_REPLY))
    assert event.reply == OptionReply.ERR_UNSUP  # type: ignore[union-attr]


@pytest.mark.parametrize("opt", [Option.STARTTLS, Option.LIST_META_CONTEXT, 99, 0xFFFFFFFF])
def test_unknown_or_unsupported_options_get_err_unsup(opt: int) -> None:
    proto = started()
    [event] = feed(proto, option(opt, b"abc"))
    assert event == OptionRequested(opt, 3, OptionReply.ERR_UNSUP)
    assert proto.data_to_send()[:16] == OPT_MAGIC + struct.pack(">II", opt, OptionReply.ERR_UNSUP)


def test_oversized_option_is_skipped_and_answered_too_big() -> None:
    proto = started()
    proto.receive_data(b"IHAVEOPT" + struct.pack(">II", 77, 131072))
    assert proto.next_event() is None
    for _ in range(4):
        proto.receive_data(bytes(32768))
    [event] = events(proto)
    assert event == OptionRequested(77, 131072, OptionReply.ERR_TOO_BIG)
    assert isinstance(feed(proto, option(Option.GO, go_data("disk")))[0], ExportChosen)


def test_bad_option_magic() -> None:
    proto = started()
    proto.receive_data(b"IHAVEOPX" + bytes(8))
    with pytest.raises(RemoteProtocolError, match="option magic"):
        proto.next_event()


# --- transmission --------------------------------------------------------------------


def test_read_and_simple_reply() -> None:
    proto = transmitting()
    [event] = feed(proto, request(Command.READ, 0x1122, 4096, 8))
    assert event == ReadRequested(0x1122, 4096, 8, 0)
    assert proto.in_flight == 1
    assert proto.reply(0x1122, data=b"abcdefgh") == simple(0x1122, 0, b"abcdefgh")
    assert proto.in_flight == 0
    with pytest.raises(LocalProtocolError):
        proto.reply(0x1122)


def test_structured_read_reply_is_one_offset_data_chunk() -> None:
    proto = transmitting(structured=True)
    feed(proto, request(Command.READ, 7, 512, 4, flags=CommandFlag.DF))
    assert proto.reply(7, data=b"wxyz") == chunk(7, 1, struct.pack(">Q", 512) + b"wxyz")
    feed(proto, request(Command.READ, 8, 0, 4))
    assert proto.reply(8, Errno.EIO, message="boom") == chunk(
        8, 0x8001, struct.pack(">IH", 5, 4) + b"boom"
    )
    feed(proto, request(Command.READ, 9, 0, 0))
    assert proto.reply(9) == chunk(9, 0, b"")
    feed(proto, request(Command.FLUSH, 10))
    assert proto.reply(10) == simple(10)


def test_write_arriving_one_byte_at_a_time() -> None:
    proto = transmitting()
    wire = request(Command.WRITE, 3, 100, 5, flags=CommandFlag.FUA) + b"hello"
    seen: list[Event] = []
    for i in range(len(wire)):
        seen += feed(proto, wire[i : i + 1])
    assert seen == [WriteRequested(3, 100, b"hello", True)]
    assert proto.reply(3) == simple(3)
    with pytest.raises(LocalProtocolError):
        feed(proto, request(Command.WRITE, 4, 0, 1) + b"x")
        proto.reply(4, data=b"x")


def test_flush_trim_write_zeroes() -> None:
    proto = transmitting()
    got = feed(
        proto,
        request(Command.FLUSH, 1)
        + request(Command.TRIM, 2, 0, 4096, CommandFlag.FUA)
        + request(Command.WRITE_ZEROES, 3, 512, 1024)
        + request(Command.WRITE_ZEROES, 4, 512, 1024, CommandFlag.NO_HOLE | CommandFlag.FUA),
    )
    assert got == [
        FlushRequested(1),
        TrimRequested(2, 0, 4096, True),
        WriteZeroesRequested(3, 512, 1024, False, True),
        WriteZeroesRequested(4, 512, 1024, True, False),
    ]


def test_trim_is_advertised_and_accepted_only_when_the_export_can_trim() -> None:
    thick = Export("disk", SIZE, can_trim=False)
    proto = started(thick)
    [chosen] = feed(proto, option(Option.GO, go_data("disk")))
    assert chosen == ExportChosen(thick, TransmissionFlag(FLAGS & ~0x0020), False)
    proto.data_to_send()
    # A client that sends NBD_CMD_TRIM anyway gets EINVAL; the connection keeps serving.
    [event] = feed(proto, request(Command.TRIM, 7, 0, 4096))
    assert isinstance(event, RequestRejected)
    assert (event.handle, event.error) == (7, Errno.EINVAL)
    assert proto.data_to_send() == simple(7, Errno.EINVAL)
    assert feed(proto, request(Command.WRITE_ZEROES, 8, 0, 512)) == [
        WriteZeroesRequested(8, 0, 512, False, True)
    ]


@pytest.mark.parametrize(
    ("cmd", "error"),
    [
        (Command.READ, Errno.EINVAL),
        (Command.TRIM, Errno.EINVAL),
        (Command.WRITE_ZEROES, Errno.ENOSPC),
    ],
)
def test_beyond_the_end(cmd: Command, error: Errno) -> None:
    proto = transmitting()
    [event] = feed(proto, request(cmd, 5, SIZE - 512, 1024))
    assert isinstance(event, RequestRejected)
    assert (event.handle, event.error) == (5, error)
    assert proto.data_to_send() == simple(5, error)
    assert proto.in_flight == 0


def test_rejected_write_payload_is_skipped() -> None:
    proto = transmitting()
    got = feed(
        proto,
        request(Command.WRITE, 1, SIZE - 2, 4) + b"abcd" + request(Command.READ, 2, 0, 1),
    )
    assert got == [
        RequestRejected(1, Command.WRITE, Errno.ENOSPC, "request beyond the end of the export"),
        ReadRequested(2, 0, 1, 0),
    ]
    assert proto.data_to_send() == simple(1, Errno.ENOSPC)


def test_oversized_requests() -> None:
    proto = transmitting()
    [read] = feed(proto, request(Command.READ, 1, 0, 65537))
    assert isinstance(read, RequestRejected) and read.error == Errno.EINVAL
    proto.receive_data(request(Command.WRITE, 2, 0, 65537))
    assert proto.next_event() is None  # skipping the payload
    proto.receive_data(bytes(65537) + request(Command.FLUSH, 3))
    [write, flush] = events(proto)
    assert isinstance(write, RequestRejected) and write.error == Errno.EINVAL
    assert flush == FlushRequested(3)
    assert proto.data_to_send() == simple(1, Errno.EINVAL) + simple(2, Errno.EINVAL)


def test_read_only_export_refuses_writes_with_eperm() -> None:
    proto = transmitting(Export("ro", SIZE, read_only=True))
    assert proto.flags & 0x2
    got = feed(
        proto,
        request(Command.WRITE, 1, 0, 3)
        + b"abc"
        + request(Command.TRIM, 2, 0, 512)
        + request(Command.WRITE_ZEROES, 3, 0, 512)
        + request(Command.READ, 4, 0, 512),
    )
    assert [(e.handle, e.error) for e in got[:3]] == [(h, Errno.EPERM) for h in (1, 2, 3)]  # type: ignore[union-attr]
    assert got[3] == ReadRequested(4, 0, 512, 0)


@pytest.mark.parametrize(
    ("cmd", "flags"),
    [
        (Command.CACHE, 0),
        (Command.BLOCK_STATUS, 0),
        (42, 0),
        (Command.READ, CommandFlag.DF),  # DF needs structured replies
        (Command.WRITE_ZEROES, CommandFlag.FAST_ZERO),
        (Command.TRIM, CommandFlag.NO_HOLE),
        (Command.READ, 0x8000),
    ],
)
def test_unknown_commands_and_flags_get_einval(cmd: int, flags: int) -> None:
    proto = transmitting()
    [event] = feed(proto, request(cmd, 9, 0, 512, flags))
    assert isinstance(event, RequestRejected) and event.error == Errno.EINVAL


def test_rejected_read_with_structured_replies_is_an_error_chunk() -> None:
    proto = transmitting(structured=True)
    feed(proto, request(Command.READ, 9, SIZE, 1))
    out = proto.data_to_send()
    assert out.startswith(bytes.fromhex("668e33ef") + struct.pack(">HHQ", 1, 0x8001, 9))
    assert struct.unpack(">I", out[20:24]) == (Errno.EINVAL,)


def test_bad_request_magic_is_a_protocol_error() -> None:
    proto = transmitting()
    proto.receive_data(b"\x25\x60\x95\x14" + bytes(24))
    with pytest.raises(RemoteProtocolError, match="request magic"):
        proto.next_event()
    with pytest.raises(RemoteProtocolError):
        proto.next_event()


def test_pipelined_requests_answered_out_of_order() -> None:
    proto = transmitting()
    wire = b"".join(request(Command.READ, h, h * 512, 512) for h in range(100))
    got = feed(proto, wire)
    assert [e.handle for e in got] == list(range(100))  # type: ignore[union-attr]
    assert proto.in_flight == 100
    for h in reversed(range(100)):
        assert proto.reply(h, data=bytes([h]) * 512) == simple(h, 0, bytes([h]) * 512)
    assert proto.in_flight == 0


def test_a_reused_handle_is_tracked_twice() -> None:
    proto = transmitting()
    feed(proto, request(Command.FLUSH, 1) + request(Command.READ, 1, 0, 2))
    assert proto.reply(1) == simple(1)  # the FLUSH, first in
    assert proto.reply(1, data=b"ab") == simple(1, 0, b"ab")


def test_reply_misuse() -> None:
    proto = transmitting()
    feed(proto, request(Command.READ, 1, 0, 4))
    with pytest.raises(LocalProtocolError):
        proto.reply(1, data=b"abc")
    with pytest.raises(LocalProtocolError):
        proto.reply(1, 2)  # ENOENT is not an NBD error value
    with pytest.raises(LocalProtocolError):
        proto.reply(1, Errno.EIO, data=b"abcd")
    assert proto.reply(1, Errno.EIO) == simple(1, Errno.EIO)


def test_disconnect_lets_requests_in_flight_finish() -> None:
    proto = transmitting()
    got = feed(proto, request(Command.READ, 1, 0, 1) + request(Command.DISC, 2))
    assert got == [ReadRequested(1, 0, 1, 0), DisconnectRequested()]
    assert proto.state is State.CLOSED
    assert proto.reply(1, data=b"z") == simple(1, 0, b"z")
    with pytest.raises(RemoteProtocolError):
        proto.receive_data(request(Command.READ, 3, 0, 1))


def test_invalid_exports_are_refused() -> None:
    with pytest.raises(LocalProtocolError):
        NbdServerProtocol([])
    with pytest.raises(LocalProtocolError):
        NbdServerProtocol([Export("x", 512, min_block=3)])
    with pytest.raises(LocalProtocolError):
        NbdServerProtocol([Export("x", 512, min_block=512, preferred_block=256)])
