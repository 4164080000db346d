"""The simulator in event time: :class:`Simulator` (step by step), :class:`LiveFeed` (endless,
for demos) and :func:`simulate` (write a run to files). All three share one code path.

Time is cut into minutes from the start. When a caller asks for the lines up to some moment,
every minute that starts before it is *planned* (the sessions, background and campaigns
starting in it are generated whole, from a random stream derived from the seed and the
minute's index), every minute that ended by then is *closed* (its application metrics and
VPC flow records are built from its counters), and the queued lines older than the moment
are released in event-time order. So the output depends on the seed and the schedule only,
never on how finely a caller slices time, and never on the wall clock.
"""

from __future__ import annotations

import heapq
import json
import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import structlog

from shopwatch.errors import ConfigError
from shopwatch.sim.campaigns import KINDS, Campaign, generate, tr_base_rate
from shopwatch.sim.emit import FORMATS, VPCFLOW_HEADER, Out, Sink, p95, render_vpcflow
from shopwatch.sim.gen_ops import TARGETS
from shopwatch.sim.history import history
from shopwatch.sim.ranges import RANGES
from shopwatch.sim.traffic import Traffic, vendor_inventory
from shopwatch.sim.world import Shop, build_shop

__all__ = [
    "DEFAULT_START",
    "FILES",
    "INVENTORY_FILE",
    "LiveFeed",
    "PlannedCampaign",
    "SimulationResult",
    "Simulator",
    "plan_campaigns",
    "simulate",
]

log = structlog.get_logger(__name__)

#: Start of a run when none is given (a Tuesday morning, UTC).
DEFAULT_START: Final = datetime(2025, 6, 3, 8, 0, tzinfo=UTC)
#: Output file of each format.
#: The shop's vendor inventory, written beside each run (``detect.vendor_inventory``).
INVENTORY_FILE: Final = "vendors.yaml"
FILES: Final[dict[str, str]] = {
    "nginx": "access.log",
    "ecs": "events.ndjson",
    "syslog": "auth.log",
    "vpcflow": "vpcflow.log",
}
_CUSTOMER_SHARE: Final = 0.55
#: The latency objective of the checkout and the gateway: a request slower than this is
#: slow (the ``le="1"`` bucket of a latency histogram).
SLOW_S: Final = 1.0
#: Campaigns that change traffic start this far ahead: no session lasts longer.
_READ_AHEAD_S: Final = 3 * 3600.0


@dataclass(frozen=True, slots=True)
class PlannedCampaign:
    """A campaign to run: its kind, start (epoch seconds), the minutes it may last at most
    (the run or schedule cuts it off there; its own parameters may end it sooner), and its
    variant (``loud`` or ``low_slow``)."""

    kind: str
    start: float
    minutes: float
    variant: str = "loud"


def _ts(value: datetime | float) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigError(f"{value.isoformat()} has no time zone; give an aware datetime (UTC)")
        return value.timestamp()
    return float(value)


def plan_campaigns(
    seed: int,
    start: datetime | float,
    minutes: float,
    kinds: Sequence[str] | None = None,
    *,
    reps: int | None = None,
) -> list[PlannedCampaign]:
    """A schedule with every variant of every kind at least once (once per six hours).

    Loud attacks and look-alikes start spread over the run (kinds with a ``stream`` of
    their own at a time drawn from it alone, so that adding a kind moves no other); low-and-slow attacks start near
    the beginning (of the run, or of each six hours), since they last hours and a shorter
    run shows only their first part. Each may last until the run ends; how long it really
    lasts is the campaign's own parameter. The office NAT starts with the run. ``reps``
    overrides how often each variant runs (default: once per six hours).
    """
    chosen = list(KINDS) if kinds is None else list(kinds)
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise ConfigError(
            f"unknown campaign kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}"
        )
    if minutes <= 0:
        raise ConfigError(f"a run needs a positive number of minutes, not {minutes}")
    t0 = _ts(start)
    rng = np.random.default_rng([seed, 5])
    reps = max(1, int(minutes // 360)) if reps is None else max(1, reps)
    part = minutes / reps
    items = [
        (k, v, r)
        for k in chosen
        if KINDS[k].stream is None
        for v in KINDS[k].variants
        for r in range(reps)
    ]
    rng.shuffle(items)
    spread_items = [it for it in items if it[1] != "low_slow" and it[0] != "corporate_nat"]
    slot = minutes / max(len(spread_items), 1)
    room = min(2.0, 0.5 * minutes)  # a loud campaign starts at least this long before the end
    plans: list[PlannedCampaign] = []
    k = 0
    for kind, variant, rep in items:
        if kind == "corporate_nat":
            begin = rep * part
        elif variant == "low_slow":
            begin = rep * part + float(rng.uniform(0, 0.1 * part))
        else:
            begin = min(k * slot + float(rng.uniform(0, slot)), minutes - room)
            k += 1
        # whole seconds: the access log and syslog have no finer time, so a campaign's
        # recorded start is never after its first line's timestamp
        offset_s = math.floor(max(begin, 0.0) * 60)
        left = math.floor((minutes * 60 - offset_s) * 1000 / 60) / 1000
        plans.append(PlannedCampaign(kind, t0 + offset_s, left, variant))
    # Kinds with a stream of their own are placed by it alone: adding one moves no other.
    for kind in chosen:
        stream = KINDS[kind].stream
        if stream is None:
            continue
        own = np.random.default_rng([seed, 11, stream])
        for variant in KINDS[kind].variants:
            for rep in range(reps):
                if variant == "low_slow":
                    begin = rep * part + float(own.uniform(0, 0.1 * part))
                else:
                    begin = rep * part + float(own.uniform(0, max(part - room, 0.0)))
                offset_s = math.floor(max(begin, 0.0) * 60)
                left = math.floor((minutes * 60 - offset_s) * 1000 / 60) / 1000
                plans.append(PlannedCampaign(kind, t0 + offset_s, left, variant))
    plans.sort(key=lambda p: (p.start, p.kind, p.variant))
    return _apart(plans, t0, t0 + minutes * 60.0)


#: A look-alike that slows a target ends at least this long before an attack on that target
#: begins (an alert's grace and then some), so that an alert about the target's metric is
#: about one of them.
TARGET_GAP_S: Final = 360.0


def _apart(plans: list[PlannedCampaign], begin: float, end: float) -> list[PlannedCampaign]:
    """Keep look-alikes that slow a target clear of the attacks on that target.

    A look-alike that would overlap an attack (it lasts at most its longest draw) moves to
    before it; when there is no room before it, it starts with the run and the attack
    moves to after it (if the run leaves that attack room, else the look-alike is left
    out). ``plans`` is sorted by start; others keep their places.
    """
    out = list(plans)
    for i, p in enumerate(plans):
        target = TARGETS.get((p.kind, p.variant))
        if target is None or not KINDS[p.kind].benign:
            continue
        longest = 60.0 * max(
            r.hi for n, r in RANGES[(p.kind, p.variant)].items() if n == "duration_min"
        )
        start = p.start
        for j, a in enumerate(out):
            if KINDS[a.kind].benign or TARGETS.get((a.kind, a.variant)) != target:
                continue
            if start + longest + TARGET_GAP_S <= a.start or start >= a.start + a.minutes * 60.0:
                continue
            start = a.start - longest - TARGET_GAP_S
            if start < begin:
                start = begin
                moved = math.floor(begin + longest + TARGET_GAP_S)
                if moved >= end - 120.0:
                    start = -1.0
                    break
                out[j] = PlannedCampaign(a.kind, moved, (end - moved) / 60.0, a.variant)
        if start < begin:
            log.debug("look_alike_left_out", kind=p.kind, target=target)
            out[i] = PlannedCampaign(p.kind, p.start, 0.0, p.variant)
            continue
        out[i] = PlannedCampaign(p.kind, float(math.floor(start)), longest / 60.0, p.variant)
    out = [p for p in out if p.minutes > 0]
    out.sort(key=lambda p: (p.start, p.kind, p.variant))
    return out


def _live_schedule(seed: int, start: float) -> Iterator[PlannedCampaign]:
    """Endless demo schedule: an attack within the first minute, then one every few minutes.

    The demo shows loud variants, cut off after a few minutes so that the kinds rotate.
    """
    rng = np.random.default_rng([seed, 6])
    # Slowdowns need a day of metric samples before they can be told, which a demo starts
    # without; they are left out (and so the demo's schedule is as it was before them).
    attacks = [k for k, v in KINDS.items() if not v.benign and not v.through_traffic]
    look_alikes = [
        "flash_sale",
        "forgetful_customer",
        "forgetful_customer",
        "declined_card_retry",
        "moving_house",
    ]
    first = ["vuln_scanner", "brute_force", "sqli_probe", "credential_stuffing"]
    hour = 0
    while True:
        h0 = start + hour * 3600
        block = [
            PlannedCampaign("corporate_nat", h0, 60.0),
            PlannedCampaign("search_crawler", h0 + 90, float(rng.uniform(15, 30))),
        ]
        t = h0 + (15.0 if hour == 0 else float(rng.uniform(60, 180)))
        k = 0
        order = list(rng.permutation(attacks))
        while t < h0 + 3600:
            if hour == 0 and k < len(first):
                kind = first[k]
            elif k % 4 == 3:
                kind = str(rng.choice(look_alikes))
            else:
                kind = str(order[k % len(order)])
            dur = (
                float(rng.uniform(2.5, 6.0)) if kind != "flash_sale" else float(rng.uniform(8, 15))
            )
            block.append(PlannedCampaign(kind, float(math.floor(t)), dur))
            t += float(rng.uniform(60, 200))
            k += 1
        yield from sorted(block, key=lambda p: p.start)
        hour += 1


class Simulator:
    """A shop producing raw log lines in event time; advance it with :meth:`tick`.

    ``campaigns`` must be sorted by start and may be endless (it is read lazily). Lines at
    or after ``end`` are never produced.
    """

    def __init__(
        self,
        start: datetime | float = DEFAULT_START,
        *,
        seed: int = 0,
        customers: int = 5000,
        campaigns: Iterable[PlannedCampaign] = (),
        end: datetime | float | None = None,
        shop: Shop | None = None,
        stream: int = 1,
        keep: frozenset[str] | None = None,
        datasets: frozenset[str] | None = None,
    ) -> None:
        if customers < 50:
            raise ConfigError(f"a shop needs at least 50 customers, not {customers}")
        self.seed = seed
        self.origin = _ts(start)
        # Another ``stream`` of one seed draws other visitors and names its events apart.
        self.stream = stream
        context = "" if stream == 1 else f"s{stream}/"
        self.sink = Sink(seed, self.origin, keep, datasets=datasets, context=context)
        if end is not None:
            self.sink.horizon = _ts(end)
        self.shop = shop if shop is not None else build_shop(seed, customers)
        self.traffic = Traffic(self.shop)
        self._planned = iter(campaigns)
        self._peek: PlannedCampaign | None = next(self._planned, None)
        self._queue: deque[PlannedCampaign] = deque()  # read ahead, not started yet
        self._next_chunk = 0
        self._next_close = 0
        self.campaigns: list[Campaign] = []
        self._drawn: dict[int | None, int] = {}  # campaigns started per random stream
        self.now = self.origin

    @property
    def ground_truth(self) -> list[dict[str, Any]]:
        """The campaigns started so far, as ground-truth records (slowdowns are started
        hours ahead of their time, so they are listed before they begin)."""
        return [c.to_dict() for c in sorted(self.campaigns, key=lambda c: c.start)]

    def tick(self, until: datetime | float) -> dict[str, list[str]]:
        """Lines with event time in [previous ``until``, ``until``), per format, oldest first.

        Formats are ``nginx``, ``ecs``, ``syslog`` and ``vpcflow``. VPC flow records and
        metric samples of a minute come once the minute has ended (as real exporters do).
        """
        u = _ts(until)
        while self.origin + 60.0 * self._next_chunk < u:
            self._plan_minute(self._next_chunk)
            self._next_chunk += 1
        while self.origin + 60.0 * (self._next_close + 1) <= u:
            self._close_minute(self._next_close)
            self._next_close += 1
        self.now = max(self.now, u)
        return self.sink.release(u)

    # ------------------------------------------------------------------ planning

    def _read_ahead(self, until: float) -> None:
        """Start now the campaigns that change traffic and begin before ``until`` (sessions
        planned now may reach their start and must be slowed from it); queue the others."""
        while self._peek is not None and self._peek.start < until:
            plan = self._peek
            self._peek = next(self._planned, None)
            if KINDS[plan.kind].through_traffic:
                self._start_campaign(plan)
            else:
                self._queue.append(plan)

    def _plan_minute(self, k: int) -> None:
        t0 = self.origin + 60.0 * k
        self._read_ahead(t0 + _READ_AHEAD_S)
        rng = np.random.default_rng([self.seed, self.stream, k])
        out = Out(self.sink, f"chunk:{k}")
        shop, traffic = self.shop, self.traffic
        rate = tr_base_rate(shop) * shop.rate_at(t0) * float(rng.lognormal(0.0, 0.12))
        n = int(rng.poisson(rate))
        for ts in np.sort(rng.uniform(t0, t0 + 60.0, n)):
            if rng.random() < _CUSTOMER_SHARE:
                visitor = traffic.visitor_for(rng, shop.pick_customer(rng, float(ts)))
            else:
                visitor = traffic.anonymous(rng)
            traffic.session(out, rng, float(ts), visitor)
        traffic.minute(out, rng, t0, rate)
        while self._queue and self._queue[0].start < t0 + 60.0:
            self._start_campaign(self._queue.popleft())

    def _start_campaign(self, plan: PlannedCampaign) -> None:
        index = len(self.campaigns)
        campaign = Campaign(
            id=f"c{index + 1:03d}-{plan.kind}",
            kind=plan.kind,
            start=plan.start,
            end=plan.start + plan.minutes * 60.0,
            variant=plan.variant,
        )
        # A kind with a stream of its own draws from it, the others from the shared one in
        # their order: adding such a kind changes no other campaign.
        stream = KINDS[plan.kind].stream
        n = self._drawn.get(stream, 0)
        self._drawn[stream] = n + 1
        if stream is None:
            rng, context = np.random.default_rng([self.seed, 2, n]), f"campaign:{n}"
        else:
            rng = np.random.default_rng([self.seed, 12, stream, n])
            context = f"campaign:s{stream}:{n}"
        generate(Out(self.sink, context), rng, campaign, self.shop, self.traffic)
        self.campaigns.append(campaign)
        log.debug(
            "campaign_generated",
            id=campaign.id,
            kind=plan.kind,
            variant=plan.variant,
            **{k: v for k, v in campaign.params.items() if isinstance(v, int | float | str)},
        )

    def _close_minute(self, m: int) -> None:
        t0 = self.origin + 60.0 * m
        stats = self.sink.pop_minute(m)
        out = Out(self.sink, f"minute:{m}")
        at = t0 + 59.999

        def rate(part: int, whole: int) -> float:
            return round(part / whole, 4) if whole else 0.0

        def ms(values: list[float], scale: float = 1000.0) -> float:
            return round(p95(values) * scale, 1)

        n = stats.requests
        # (service, metric, value, observations behind it: None for a count of its own)
        metrics: list[tuple[str, str, float, int | None]] = [
            ("storefront", "http.requests", float(n), None),
            ("storefront", "http.latency.p95_ms", ms(stats.rts), n),
            ("storefront", "http.error_rate", rate(stats.errors, n), n),
            ("storefront", "http.client_error_rate", rate(stats.client_errors, n), n),
            ("storefront", "orders.per_min", float(stats.orders), None),
            ("storefront", "orders.revenue", round(stats.revenue, 2), None),
            (
                "storefront",
                "auth.login_failure_rate",
                rate(stats.login_failures, stats.logins),
                stats.logins,
            ),
            ("payments", "payments.per_min", float(stats.payments), None),
            (
                "payments",
                "payments.decline_rate",
                rate(stats.declines, stats.payments),
                stats.payments,
            ),
        ]
        # Latency of steps that may not happen every minute: no sample without a request.
        # and the share of them slower than the shop's objective (a histogram bucket)
        if stats.checkout_rts:
            metrics.append(
                (
                    "storefront",
                    "checkout.slow_share",
                    rate(sum(rt > SLOW_S for rt in stats.checkout_rts), len(stats.checkout_rts)),
                    len(stats.checkout_rts),
                )
            )
        if stats.gateway_ms:
            metrics.append(
                (
                    "payments",
                    "gateway.slow_share",
                    rate(sum(ms > SLOW_S * 1000 for ms in stats.gateway_ms), len(stats.gateway_ms)),
                    len(stats.gateway_ms),
                )
            )
        if stats.checkout_rts:
            metrics.append(
                (
                    "storefront",
                    "checkout.latency.p95_ms",
                    ms(stats.checkout_rts),
                    len(stats.checkout_rts),
                )
            )
        if stats.gateway_ms:
            metrics.append(
                (
                    "payments",
                    "gateway.latency.p95_ms",
                    ms(stats.gateway_ms, 1.0),
                    len(stats.gateway_ms),
                )
            )
        for service, name, value, count in metrics:
            fields: dict[str, Any] = {
                "event.dataset": "apm.metric",
                "event.kind": "metric",
                "event.action": "sample",
                "service.name": service,
                "host.name": "web-1" if service == "storefront" else "app-1",
                "shop.metric.name": name,
                "shop.metric.value": value,
            }
            if count is not None:
                fields["shop.metric.count"] = count
            out.ecs(at, fields)
        start, end = int(t0), int(t0) + 60
        for (eni, src, dst, dport, proto, action), (packets, nbytes, sport) in sorted(
            stats.flows.items()
        ):
            self.sink.push(
                t0,
                "vpcflow",
                render_vpcflow(
                    eni, src, dst, sport, dport, proto, packets, nbytes, start, end, action
                ),
            )
            if action == "ACCEPT" and dport in (22, 443) and not src.startswith("10."):
                # the replies, as the flow log records them (one record per direction)
                self.sink.push(
                    t0,
                    "vpcflow",
                    render_vpcflow(
                        eni,
                        dst,
                        src,
                        dport,
                        sport,
                        proto,
                        max(packets - 2, 1),
                        nbytes * 4 if dport == 443 else nbytes,
                        start,
                        end,
                        action,
                    ),
                )


#: The ECS datasets of the warm-up hours before a run: the shop's metric samples and vendor
#: calls, which baselines of a few hours need (customers' past is :mod:`shopwatch.sim.history`).
WARMUP_DATASETS: Final = frozenset({"apm.metric", "vendor.api"})
#: The event-time prefix every ECS line starts with, then a fixed-width RFC 3339 time.
_TS_PREFIX: Final = len('{"@timestamp":"')


def warmup(shop: Shop, seed: int, start: float, hours: float) -> list[str]:
    """The ``apm.metric`` samples and ``vendor.api`` calls of the ``hours`` before ``start``.

    The same shop's ordinary traffic (no campaigns), run by the same code as the live run on
    a random stream of its own (``[seed, 10, minute]``; event ids apart), of which only the
    metric samples and vendor calls are kept: what the shop's monitoring had recorded of
    its last hours when the run begins.
    """
    if hours <= 0:
        return []
    begin = start - hours * 3600.0
    sim = Simulator(
        begin,
        seed=seed,
        shop=shop,
        end=start,
        stream=10,
        keep=frozenset({"ecs"}),
        datasets=WARMUP_DATASETS,
    )
    return sim.tick(start)["ecs"]


def _merge(*parts: list[str]) -> list[str]:
    """ECS lines of several time-ordered lists, in one time order (stable)."""
    return list(heapq.merge(*parts, key=lambda line: line[_TS_PREFIX : _TS_PREFIX + 24]))


class LiveFeed(Simulator):
    """An endless simulator for demos: an attack within the first minute, then every few.

    Call :meth:`tick` with the event time to produce up to (e.g. start + elapsed wall time);
    :attr:`ground_truth` lists the campaigns started so far.
    """

    def __init__(self, start: datetime | float, *, seed: int = 0, customers: int = 2000) -> None:
        super().__init__(
            start, seed=seed, customers=customers, campaigns=_live_schedule(seed, _ts(start))
        )

    def past(self, days: float) -> list[str]:
        """The shop's ECS lines of the ``days`` before the feed starts (its customers' past)."""
        return history(self.shop, self.traffic, self.seed, self.origin, days)


@dataclass(slots=True)
class SimulationResult:
    """What :func:`simulate` wrote."""

    out_dir: Path
    files: dict[str, Path]
    lines: dict[str, int]
    campaigns: list[dict[str, Any]]
    start: datetime
    end: datetime
    ground_truth: Path = field(default_factory=Path)


def simulate(
    out_dir: Path | str,
    minutes: float,
    seed: int = 0,
    *,
    start: datetime = DEFAULT_START,
    customers: int = 5000,
    campaigns: Sequence[str] | None = None,
    step_s: float = 60.0,
    history_days: float = 90.0,
    warmup_hours: float = 24.0,
) -> SimulationResult:
    """Write ``minutes`` of shop traffic from ``start`` into ``out_dir``.

    Files: ``access.log`` (nginx combined + request time), ``events.ndjson`` (ECS),
    ``auth.log`` (RFC 3164 sshd), ``vpcflow.log`` (v2, with header) and
    ``ground_truth.json`` (one record per campaign) and ``run.json`` (start, end, seed). ``campaigns`` lists kinds (default:
    all of :data:`KINDS`; empty: none); each kind runs in every one of its variants.
    ``events.ndjson`` starts with the customers' logins and orders of the ``history_days``
    before ``start`` (:mod:`shopwatch.sim.history`; 0 for none) and the metric samples and
    vendor calls of the ``warmup_hours`` before it (:func:`warmup`; 0 for none). Same
    arguments, same bytes.
    """
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    t0 = _ts(start)
    t_end = t0 + minutes * 60.0
    plans = plan_campaigns(seed, t0, minutes, campaigns) if (campaigns is None or campaigns) else []
    sim = Simulator(t0, seed=seed, customers=customers, campaigns=plans, end=t_end)
    paths = {fmt: directory / name for fmt, name in FILES.items()}
    counts = dict.fromkeys(FORMATS, 0)
    handles = {fmt: path.open("w", encoding="utf-8", newline="\n") for fmt, path in paths.items()}
    try:
        handles["vpcflow"].write(VPCFLOW_HEADER + "\n")
        past = _merge(
            history(sim.shop, sim.traffic, seed, t0, history_days),
            warmup(sim.shop, seed, t0, warmup_hours),
        )
        if past:
            handles["ecs"].write("\n".join(past) + "\n")
            counts["ecs"] += len(past)
        t = t0
        while t < t_end:
            t = min(t + step_s, t_end)
            for fmt, lines in sim.tick(t).items():
                if lines:
                    handles[fmt].write("\n".join(lines) + "\n")
                    counts[fmt] += len(lines)
            log.debug("simulate_step", until=t, **counts)
    finally:
        for handle in handles.values():
            handle.close()
    truth = sim.ground_truth
    truth_path = directory / "ground_truth.json"
    truth_path.write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    run = {
        "start": datetime.fromtimestamp(t0, UTC).isoformat(),
        "end": datetime.fromtimestamp(t_end, UTC).isoformat(),
        "history_days": history_days,
        "warmup_hours": warmup_hours,
        "seed": seed,
        "customers": customers,
    }
    (directory / "run.json").write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    (directory / INVENTORY_FILE).write_text(vendor_inventory(), encoding="utf-8")
    log.info("simulation_written", out_dir=str(directory), campaigns=len(truth), **counts)
    return SimulationResult(
        out_dir=directory,
        files=paths,
        lines=counts,
        campaigns=truth,
        start=datetime.fromtimestamp(t0, UTC),
        end=datetime.fromtimestamp(t_end, UTC),
        ground_truth=truth_path,
    )
