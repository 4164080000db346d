"""Where generated traffic goes: line renderers for the four formats and a time-ordered sink.

Generators write events with their event time into a :class:`Sink` through an :class:`Out`
(which numbers event ids per generation context, so ids do not depend on how a caller
slices time). The sink holds lines until :meth:`Sink.release` hands out every line older
than a moment, sorted by event time. Web requests, logins and payments also feed per-minute
counters from which the application metrics and the VPC flow records of each minute are
built once that minute can no longer change (:meth:`Sink.close_minute`).
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import orjson

__all__ = [
    "FORMATS",
    "VPCFLOW_HEADER",
    "Out",
    "Sink",
    "iso_ms",
    "nginx_time",
    "render_nginx",
    "render_syslog",
    "render_vpcflow",
]

#: Format names of the live feed, in output order.
FORMATS: Final[tuple[str, ...]] = ("nginx", "ecs", "syslog", "vpcflow")
VPCFLOW_HEADER: Final = (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
    "start end action log-status"
)
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
ACCOUNT_ID: Final = "418295730641"
LB_ENI: Final = "eni-0c2f7d9e41a8b3605"
BASTION_ENI: Final = "eni-07a1e5c3d9b24f816"
APP_ENI: Final = "eni-0f4b8a2c6e1d97350"
LB_IP: Final = "10.0.1.37"
BASTION_IP: Final = "10.0.3.12"
APP_IP: Final = "10.0.2.21"


def nginx_time(ts: float) -> str:
    """``03/Jun/2025:08:00:01 +0000`` for an epoch second (UTC, English month names)."""
    return _nginx_second(int(ts // 1))


@functools.lru_cache(maxsize=4096)
def _nginx_second(ts: int) -> str:
    t = time.gmtime(ts)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def iso_ms(ts: float) -> str:
    """RFC 3339 with milliseconds and ``Z``: ``2025-06-03T08:00:01.234Z``."""
    whole = int(ts // 1)
    ms = min(int((ts - whole) * 1000), 999)  # truncated, like the access log's seconds
    t = time.gmtime(whole)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
        f"{t.tm_sec:02d}.{ms:03d}Z"
    )


def _escape(text: str) -> str:
    """Escape like nginx does in log fields: quotes, backslashes and non-printables as ``\\xHH``."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch in '"\\' or code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02X}")
        elif code > 0x7F:
            out.extend(f"\\x{b:02X}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out)


def render_nginx(
    ts: float,
    ip: str,
    method: str,
    target: str,
    proto: str,
    status: int,
    size: int,
    referrer: str,
    ua: str,
    rt: float,
    user: str = "-",
) -> str:
    """One nginx "combined" line followed by the request time in seconds."""
    request = _escape(f"{method} {target} {proto}")
    return (
        f'{ip} - {user} [{nginx_time(ts)}] "{request}" {status} {size} '
        f'"{_escape(referrer)}" "{_escape(ua)}" {rt:.3f}'
    )


def render_syslog(ts: float, host: str, program: str, pid: int, message: str) -> str:
    """One RFC 3164 line as rsyslog writes auth.log (UTC, space-padded day)."""
    t = time.gmtime(ts)
    return (
        f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} "
        f"{host} {program}[{pid}]: {message}"
    )


def render_vpcflow(
    eni: str,
    src: str,
    dst: str,
    sport: int,
    dport: int,
    proto: int,
    packets: int,
    nbytes: int,
    start: int,
    end: int,
    action: str,
) -> str:
    """One VPC flow log record, version 2 default format."""
    return (
        f"2 {ACCOUNT_ID} {eni} {src} {dst} {sport} {dport} {proto} {packets} {nbytes} "
        f"{start} {end} {action} OK"
    )


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys to nested objects (``{"source.ip": x}`` -> ``{"source": {"ip": x}}``)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None:
            continue
        if key == "@timestamp":
            out[key] = value
            continue
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


#: The shop's own checkout steps (the card payment step is mostly the gateway's time).
CHECKOUT_STEPS: Final = frozenset({"/checkout", "/api/checkout/shipping"})
#: The checkout step that waits for the card authorization.
PAYMENT_STEP: Final = "/api/checkout/payment"
#: Vendors whose calls are card authorizations.
PAYMENT_GATEWAYS: Final = frozenset({"stripe"})


@dataclass(slots=True)
class _Minute:
    """Counters of one minute of event time, turned into metrics and flows when it closes."""

    requests: int = 0
    errors: int = 0
    client_errors: int = 0
    rts: list[float] = field(default_factory=list)
    checkout_rts: list[float] = field(default_factory=list)  # the shop's own checkout steps
    gateway_ms: list[float] = field(default_factory=list)  # card authorizations' durations
    orders: int = 0
    revenue: float = 0.0
    payments: int = 0
    declines: int = 0
    logins: int = 0
    login_failures: int = 0
    # (eni, src, dst, dport, proto, action) -> [packets, bytes, sport]
    flows: dict[tuple[str, str, str, int, int, str], list[int]] = field(default_factory=dict)


class Sink:
    """Time-ordered buffer of generated lines, per format, plus per-minute counters."""

    def __init__(
        self,
        seed: int,
        origin: float,
        keep: frozenset[str] | None = None,
        *,
        datasets: frozenset[str] | None = None,
        context: str = "",
    ) -> None:
        self.seed = seed
        self.keep = keep  # formats to queue (None: all); others are counted, not rendered
        self.datasets = datasets  # ECS datasets to queue (None: all)
        self.context = context  # prefix of every event-id context (a second stream of a seed)
        self.origin = origin  # epoch seconds of minute 0
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = 0
        self._minutes: dict[int, _Minute] = defaultdict(_Minute)
        self.horizon: float | None = None  # lines at or after this time are dropped
        # Slowdowns: target -> [(start, full from, end, factor)]. "checkout" is the shop's
        # own checkout steps (the page and the shipping step), "gateway" the card
        # authorizations at the payment provider (and the payment step waiting for them).
        self.slowdowns: dict[str, list[tuple[float, float, float, float]]] = {}
        # Vendor outages: vendor -> [(start, full from, end, share failing, statuses)].
        self.failures: dict[str, list[tuple[float, float, float, float, tuple[int, ...]]]] = {}

    def slow(self, target: str, start: float, ramp_s: float, end: float, factor: float) -> None:
        """From ``start`` to ``end``, ``target`` takes up to ``factor`` times as long (reached
        after ``ramp_s``: 0 for a sudden shift), for every request made to it."""
        self.slowdowns.setdefault(target, []).append((start, start + ramp_s, end, factor))

    def fail(
        self, vendor: str, start: float, ramp_s: float, end: float, share: float,
        statuses: tuple[int, ...],
    ) -> None:
        """From ``start`` to ``end``, up to ``share`` of the calls to ``vendor`` fail with one
        of ``statuses`` (reached after ``ramp_s``: 0 for an outage that begins at once)."""
        self.failures.setdefault(vendor, []).append((start, start + ramp_s, end, share, statuses))

    def failing(self, vendor: str, t: float) -> tuple[float, tuple[int, ...]]:
        """The share of calls to ``vendor`` that fail at ``t`` beyond its usual errors, and
        the statuses they fail with."""
        share, statuses = 0.0, ()
        for start, full, end, most, codes in self.failures.get(vendor, ()):
            if start <= t < end:
                ramp = 1.0 if full <= start else min(1.0, (t - start) / (full - start))
                share, statuses = 1.0 - (1.0 - share) * (1.0 - most * ramp), codes
        return share, statuses

    def slowness(self, target: str, t: float) -> float:
        """How many times slower than usual ``target`` is at ``t``."""
        f = 1.0
        for start, full, end, factor in self.slowdowns.get(target, ()):
            if start <= t < end:
                ramp = 1.0 if full <= start else min(1.0, (t - start) / (full - start))
                f *= 1.0 + (factor - 1.0) * ramp
        return f

    def push(self, ts: float, fmt: str, line: str) -> None:
        """Queue ``line`` of format ``fmt`` at event time ``ts``."""
        if self.horizon is not None and ts >= self.horizon:
            return
        if self.keep is not None and fmt not in self.keep:
            return
        self._seq += 1
        heapq.heappush(self._heap, (ts, self._seq, fmt, line))

    @property
    def pushed(self) -> int:
        """Lines queued so far (ever), not counting those dropped past the horizon."""
        return self._seq

    def drain(self) -> list[tuple[float, str, str]]:
        """Every queued line as ``(time, format, line)``, oldest first; empties the queue."""
        heap, self._heap = self._heap, []
        heap.sort()
        return [(ts, fmt, line) for ts, _, fmt, line in heap]

    def minute(self, ts: float) -> _Minute:
        """The counters of the minute holding ``ts``."""
        return self._minutes[int((ts - self.origin) // 60)]

    def release(self, until: float) -> dict[str, list[str]]:
        """Every queued line with event time before ``until``, per format, oldest first."""
        out: dict[str, list[str]] = {fmt: [] for fmt in FORMATS}
        heap = self._heap
        while heap and heap[0][0] < until:
            _, _, fmt, line = heapq.heappop(heap)
            out[fmt].append(line)
        return out

    def open_minutes(self) -> list[int]:
        """Indexes of minutes that have counters and are not closed yet."""
        return sorted(self._minutes)

    def pop_minute(self, index: int) -> _Minute:
        """Remove and return the counters of minute ``index`` (empty if none)."""
        return self._minutes.pop(index, _Minute())

    @property
    def pending(self) -> int:
        """Lines queued and not released yet."""
        return len(self._heap)


class Out:
    """A writer into a :class:`Sink` for one generation context (its own event-id sequence)."""

    __slots__ = ("_n", "ctx", "sink")

    def __init__(self, sink: Sink, ctx: str) -> None:
        self.sink = sink
        self.ctx = ctx
        self._n = 0

    def event_id(self) -> str:
        """The next event id of this context: stable across runs and tick sizes."""
        self._n += 1
        raw = f"{self.sink.seed}:{self.sink.context}{self.ctx}:{self._n}".encode()
        return hashlib.blake2b(raw, digest_size=10).hexdigest()

    def web(
        self,
        ts: float,
        ip: str,
        method: str,
        target: str,
        status: int,
        size: int,
        referrer: str,
        ua: str,
        rt: float,
        proto: str = "HTTP/2.0",
    ) -> None:
        """An access-log line (logged when the response was sent: ``ts`` + ``rt``)."""
        if self.sink.slowdowns:
            if target in CHECKOUT_STEPS:
                rt *= self.sink.slowness("checkout", ts)
            elif target == PAYMENT_STEP:
                rt *= self.sink.slowness("gateway", ts)
        keep = self.sink.keep
        if keep is None or "nginx" in keep:
            line = render_nginx(ts, ip, method, target, proto, status, size, referrer, ua, rt)
            self.sink.push(ts, "nginx", line)
        m = self.sink.minute(ts)
        m.requests += 1
        m.rts.append(rt)
        if target in CHECKOUT_STEPS:
            m.checkout_rts.append(rt)
        if status >= 500:
            m.errors += 1
        elif status >= 400:
            m.client_errors += 1
        key = (LB_ENI, ip, LB_IP, 443, 6, "ACCEPT")
        flow = m.flows.get(key)
        packets = 8 + size // 1380
        nbytes = size + 900 + len(target)
        if flow is None:
            m.flows[key] = [
                packets,
                nbytes,
                32768 + zlib.crc32(f"{ip}:{int(ts) // 60}".encode()) % 28000,
            ]
        else:
            flow[0] += packets
            flow[1] += nbytes

    def ecs(self, ts: float, fields: dict[str, Any]) -> str:
        """An ECS NDJSON event (dotted keys, rendered nested); returns its ``event.id``."""
        event_id = self.event_id()
        keep, datasets = self.sink.keep, self.sink.datasets
        dataset = fields.get("event.dataset")
        if (keep is None or "ecs" in keep) and (datasets is None or dataset in datasets):
            doc = {"@timestamp": iso_ms(ts), "event.id": event_id, **fields}
            self.sink.push(ts, "ecs", orjson.dumps(_nest(doc)).decode())
        if dataset == "shop.auth" and fields.get("event.action") == "login":
            m = self.sink.minute(ts)
            m.logins += 1
            m.login_failures += fields.get("event.outcome") == "failure"
        elif dataset == "shop.payment" and fields.get("event.action") == "authorize":
            m = self.sink.minute(ts)
            m.payments += 1
            m.declines += fields.get("event.outcome") == "failure"
        elif dataset == "vendor.api" and fields.get("shop.vendor.name") in PAYMENT_GATEWAYS:
            self.sink.minute(ts).gateway_ms.append(float(fields.get("event.duration") or 0) / 1e6)
        elif dataset == "shop.order" and fields.get("event.action") == "order_placed":
            m = self.sink.minute(ts)
            m.orders += 1
            m.revenue += float(fields.get("shop.order.amount") or 0.0)
        return event_id

    def syslog(self, ts: float, host: str, program: str, pid: int, message: str) -> None:
        """An auth.log line."""
        if self.sink.keep is not None and "syslog" not in self.sink.keep:
            return
        self.sink.push(ts, "syslog", render_syslog(ts, host, program, pid, message))

    def flow(
        self,
        ts: float,
        eni: str,
        src: str,
        dst: str,
        sport: int,
        dport: int,
        proto: int,
        packets: int,
        nbytes: int,
        action: str,
    ) -> None:
        """Count a network flow into its minute's VPC flow record."""
        m = self.sink.minute(ts)
        key = (eni, src, dst, dport, proto, action)
        flow = m.flows.get(key)
        if flow is None:
            m.flows[key] = [packets, nbytes, sport]
        else:
            flow[0] += packets
            flow[1] += nbytes


def p95(values: list[float]) -> float:
    """95th percentile (0.0 for no values)."""
    if not values:
        return 0.0
    return float(np.percentile(np.asarray(values), 95))
