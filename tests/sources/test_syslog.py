"""Syslog listener with real UDP and TCP sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from shopwatch.errors import ConfigError
from shopwatch.sources.base import ChunkQueue, SourceMetrics
from shopwatch.sources.syslog import OctetOrLineFramer, SyslogSource
from tests.sources.conftest import WAIT_S, lines_of, running, take

RFC3164 = [
    "<38>Mar  5 10:15:01 web1 sshd[2211]: Failed password for invalid user admin from 203.0.113.7 port 52144 ssh2",
    "<38>Mar  5 10:15:03 web1 sshd[2211]: Failed password for root from 203.0.113.7 port 52150 ssh2",
    "<85>Mar  5 10:16:40 web1 sudo:   deploy : TTY=pts/0 ; PWD=/srv/shop ; USER=root ; COMMAND=/bin/systemctl restart nginx",
]
RFC5424 = [
    "<86>1 2024-03-05T10:15:02.003Z web1 sshd 2212 - - Accepted publickey for deploy from 198.51.100.4 port 50022 ssh2",
    '<38>1 2024-03-05T10:15:05.120+01:00 db1 sshd 3301 ID47 [exampleSDID@32473 iut="3" eventSource="Application"] Invalid user oracle from 203.0.113.9 port 40122',
]
MAX = 512


@pytest.fixture()
def listener() -> Iterator[tuple[SyslogSource, ChunkQueue]]:
    queue = ChunkQueue()
    source = SyslogSource(
        queue,
        port=0,
        max_message_bytes=MAX,
        max_connections=2,
        min_idle_to_evict_s=WAIT_S * 10,  # busy connections are never evicted here
        metrics=SourceMetrics(),
    )
    with running([source], queue):
        yield source, queue


def udp_send(port: int, *datagrams: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in datagrams:
            sock.sendto(datagram, ("127.0.0.1", port))


def tcp_connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    return sock


def dropped(source: SyslogSource, name: str, reason: str) -> float:
    value = source.metrics.registry.get_sample_value(
        "shopwatch_sources_dropped_total", {"source": name, "reason": reason}
    )
    return value or 0.0


def test_udp_datagrams_of_both_rfcs(listener: tuple[SyslogSource, ChunkQueue]) -> None:
    source, queue = listener
    assert source.udp_port
    udp_send(source.udp_port, RFC3164[0].encode(), (RFC5424[0] + "\n").encode())
    first = lines_of(take(queue, 2))
    udp_send(source.udp_port, ("\n".join([RFC3164[1], RFC5424[1], RFC3164[2]]) + "\n").encode())
    chunks = take(queue, 3)
    assert first == [RFC3164[0], RFC5424[0]]
    assert lines_of(chunks) == [RFC3164[1], RFC5424[1], RFC3164[2]]
    assert {(c.source, c.format) for c in chunks} == {("syslog-udp", "syslog")}
    assert chunks[0].first_line_no == 3


def test_tcp_newline_framing_with_several_messages_per_segment(
    listener: tuple[SyslogSource, ChunkQueue],
) -> None:
    source, queue = listener
    assert source.tcp_port
    with tcp_connect(source.tcp_port) as sock:
        sock.sendall(("\n".join(RFC3164) + "\n" + RFC5424[0][:30]).encode())
        first = take(queue, 3)
        sock.sendall((RFC5424[0][30:] + "\r\n").encode())
        second = take(queue, 1)
        sock.sendall(RFC5424[1].encode())  # no newline: ends with the connection
    last = take(queue, 1)
    assert lines_of(first) == RFC3164
    assert lines_of(second + last) == RFC5424
    assert {(c.source, c.format) for c in first} == {("syslog-tcp", "syslog")}


def test_tcp_octet_counting(listener: tuple[SyslogSource, ChunkQueue]) -> None:
    source, queue = listener
    assert source.tcp_port
    frames = b"".join(f"{len(m.encode())} {m}".encode() for m in RFC5424 + RFC3164)
    with tcp_connect(source.tcp_port) as sock:
        sock.sendall(frames[:25])  # a frame split across segments
        sock.sendall(frames[25:])
        chunks = take(queue, 5)
    assert lines_of(chunks) == RFC5424 + RFC3164


def test_oversized_messages_are_counted_and_dropped(
    listener: tuple[SyslogSource, ChunkQueue],
) -> None:
    source, queue = listener
    assert source.udp_port and source.tcp_port
    huge = "<38>Mar  5 10:15:01 web1 app: " + "x" * (MAX * 2)
    udp_send(source.udp_port, huge.encode(), RFC3164[0].encode())
    assert lines_of(take(queue, 1)) == [RFC3164[0]]
    with tcp_connect(source.tcp_port) as sock:
        sock.sendall(f"{len(huge)} {huge}".encode())  # octet-counted, skipped without keeping it
        sock.sendall(f"{len(RFC5424[0])} {RFC5424[0]}".encode())
        sock.sendall(huge.encode() + b"\n" + RFC3164[1].encode() + b"\n")  # newline-framed
        chunks = take(queue, 2)
    assert lines_of(chunks) == [RFC5424[0], RFC3164[1]]
    assert dropped(source, "syslog-udp", "oversize") == 1
    assert dropped(source, "syslog-tcp", "oversize") == 2


def test_connection_limit(listener: tuple[SyslogSource, ChunkQueue]) -> None:
    source, queue = listener
    assert source.tcp_port
    with tcp_connect(source.tcp_port) as a, tcp_connect(source.tcp_port) as b:
        a.sendall(RFC3164[0].encode() + b"\n")
        b.sendall(RFC3164[1].encode() + b"\n")
        take(queue, 2)  # both handlers are running: the limit (2) is reached
        with tcp_connect(source.tcp_port) as c:
            c.settimeout(WAIT_S)
            assert c.recv(1) == b""  # closed by the listener
    refused = source.metrics.registry.get_sample_value(
        "shopwatch_sources_connections_total", {"source": "syslog-tcp", "outcome": "refused"}
    )
    assert refused == 1


def test_batches_flush_by_size() -> None:
    queue = ChunkQueue()
    source = SyslogSource(queue, port=0, protocols=["tcp"], batch_lines=50, flush_interval_s=5.0)
    with running([source], queue):
        assert source.tcp_port and source.udp_port is None
        with tcp_connect(source.tcp_port) as sock:
            sock.sendall(("\n".join(f"{RFC3164[0]} #{i}" for i in range(120)) + "\n").encode())
            chunks = take(queue, 100, timeout=2.0)  # two full batches, long before 5 s
    assert [len(c.lines) for c in chunks] == [50, 50]
    assert [c.first_line_no for c in chunks] == [1, 51]


def test_framer_handles_every_split_point() -> None:
    stream = (
        b"".join(f"{len(m.encode())} {m}".encode() for m in RFC5424)
        + ("\n".join(RFC3164) + "\n").encode()
    )
    for cut in range(len(stream)):
        framer = OctetOrLineFramer(MAX)
        got = framer.feed(stream[:cut]) + framer.feed(stream[cut:]) + framer.close()
        assert [m.decode() for m in got] == RFC5424 + RFC3164, cut


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigError):
        SyslogSource(ChunkQueue(), protocols=["sctp"])  # type: ignore[list-item]


def test_udp_overflow_is_dropped_and_counted_when_the_queue_is_full() -> None:
    queue = ChunkQueue(max_chunks=1)
    source = SyslogSource(
        queue, port=0, protocols=["udp"], batch_lines=1, max_pending_lines=3, flush_interval_s=0.01
    )
    with running([source], queue):
        assert source.udp_port
        udp_send(source.udp_port, RFC3164[0].encode())
        deadline = time.monotonic() + WAIT_S
        while len(queue) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        udp_send(source.udp_port, *(f"{RFC3164[1]} #{i}".encode() for i in range(10)))
        while dropped(source, "syslog-udp", "queue_full") < 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert dropped(source, "syslog-udp", "queue_full") == 7
        chunks = take(queue, 4)  # the one queued, then the three held back
    assert lines_of(chunks) == [RFC3164[0]] + [f"{RFC3164[1]} #{i}" for i in range(3)]
    assert [c.first_line_no for c in chunks] == [1, 2, 3, 4]


def test_port_in_use_is_a_config_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        queue = ChunkQueue()
        source = SyslogSource(queue, port=taken.getsockname()[1])
        with pytest.raises(ConfigError, match="cannot listen"), running([source], queue):
            pass


def connections(source: SyslogSource, outcome: str) -> float:
    value = source.metrics.registry.get_sample_value(
        "shopwatch_sources_connections_total", {"source": "syslog-tcp", "outcome": outcome}
    )
    return value or 0.0


def send_with_reconnect(port: int, messages: list[bytes], queue: ChunkQueue) -> list[str]:
    """Send each message as a real sender would: reconnect when the listener closes us."""
    got: list[str] = []
    deadline = time.monotonic() + WAIT_S * 3
    pending = list(messages)
    while pending and time.monotonic() < deadline:
        try:
            with tcp_connect(port) as sock:
                while pending:
                    sock.sendall(pending[0] + b"\n")
                    chunk = queue.get(timeout=1.0)
                    if chunk is None:
                        break  # our connection was closed unread: reconnect
                    got.extend(chunk.lines)
                    pending.pop(0)
        except OSError:
            time.sleep(0.05)
    return got


def test_silent_connections_do_not_lock_out_a_real_sender() -> None:
    queue = ChunkQueue()
    source = SyslogSource(queue, port=0, protocols=["tcp"], metrics=SourceMetrics())
    with running([source], queue):
        assert source.tcp_port
        silent = [tcp_connect(source.tcp_port) for _ in range(256)]
        try:
            messages = [f"{RFC3164[0]} #{i}".encode() for i in range(10)]
            got = send_with_reconnect(source.tcp_port, messages, queue)
        finally:
            for sock in silent:
                sock.close()
    assert got == [m.decode() for m in messages]
    assert connections(source, "evicted") >= 1


def test_idle_connections_are_closed_and_counted() -> None:
    queue = ChunkQueue()
    source = SyslogSource(
        queue, port=0, protocols=["tcp"], idle_timeout_s=0.2, metrics=SourceMetrics()
    )
    with running([source], queue), tcp_connect(source.tcp_port or 0) as sock:
        sock.settimeout(WAIT_S)
        assert sock.recv(1) == b""  # closed by the listener once idle
    assert connections(source, "closed_idle") == 1


def test_open_connections_gauge_and_per_address_limit() -> None:
    queue = ChunkQueue()
    source = SyslogSource(
        queue,
        port=0,
        protocols=["tcp"],
        max_connections_per_ip=2,
        min_idle_to_evict_s=WAIT_S * 10,
        metrics=SourceMetrics(),
    )
    with running([source], queue):
        assert source.tcp_port
        with tcp_connect(source.tcp_port) as a, tcp_connect(source.tcp_port) as b:
            a.sendall(RFC3164[0].encode() + b"\n")
            b.sendall(RFC3164[1].encode() + b"\n")
            take(queue, 2)
            gauge = source.metrics.registry.get_sample_value(
                "shopwatch_sources_open_connections", {"source": "syslog-tcp"}
            )
            assert gauge == 2
            with tcp_connect(source.tcp_port) as c:
                c.settimeout(WAIT_S)
                assert c.recv(1) == b""  # this address already holds 2 busy connections
    assert connections(source, "refused") == 1


def test_connection_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="idle_timeout_s"):
        SyslogSource(ChunkQueue(), idle_timeout_s=0)
    with pytest.raises(ConfigError, match="max_connections_per_ip"):
        SyslogSource(ChunkQueue(), max_connections_per_ip=0)


def test_connection_bounds_come_from_the_settings() -> None:
    from shopwatch.config import SyslogSource as SyslogSettings

    settings = SyslogSettings(
        port=0, max_connections=9, max_connections_per_ip=3, idle_timeout_s=4.5
    )
    source = SyslogSource.from_settings(settings, ChunkQueue())
    assert (source.max_connections, source.max_connections_per_ip, source.idle_timeout_s) == (
        9,
        3,
        4.5,
    )


def test_a_sender_waiting_for_queue_room_is_never_evicted() -> None:
    """Backpressure is not silence: a pushed-back sender keeps its place and its messages."""
    queue = ChunkQueue(max_chunks=1, max_lines=1)
    source = SyslogSource(
        queue,
        port=0,
        protocols=["tcp"],
        max_connections=1,
        min_idle_to_evict_s=0.0,
        batch_lines=1,
        flush_interval_s=0.01,
        max_pending_lines=1,
        metrics=SourceMetrics(),
    )
    with running([source], queue):
        assert source.tcp_port
        with tcp_connect(source.tcp_port) as a:
            for line in RFC3164:  # one lands in the queue, one waits to flush, one is held
                a.sendall(line.encode() + b"\n")
                time.sleep(0.05)
            deadline = time.monotonic() + WAIT_S
            while not any(c.busy for c in list(source._connections.values())):
                assert time.monotonic() < deadline, "the sender was never pushed back"
                time.sleep(0.01)
            with tcp_connect(source.tcp_port) as b:
                b.settimeout(WAIT_S)
                assert b.recv(1) == b""  # refused: the only connection is busy, not silent
            got = lines_of(take(queue, 3))
    assert got == RFC3164
    assert connections(source, "refused") == 1
    assert connections(source, "evicted") == 0
