"""The process's memory ceiling (``runtime.memory_max_bytes``) and what holds it.

The queue, state and request bounds each cap one thing; what a process really takes is
more than their sum: the batch being parsed and run, request bodies being read and
checked, allocator slack. :class:`MemoryGovernor` watches the resident set size (RSS, from
``/proc/self/statm``, sampled every ``sample_s`` by a thread of its own once started)
against the ceiling and turns it into admission control, with hysteresis:

- Above ``high`` x ceiling the governor is *pressed*: the hand-off queue holds at most an
  eighth of its byte bound (so file tails wait, TCP syslog stops reading, UDP syslog
  drops and counts, HTTP ingest answers 429 before it reads a body), counted as
  ``shopwatch_sources_queue_full_total{bound="memory"}``; the live worker hands freed
  memory back to the system after each batch. Only near the ceiling itself (``critical``
  x ceiling), when it has been idle that long or its smallest batches still reach it, it
  sheds detector state (least recently seen keys first, counted like any shed) down to
  half of what it holds: shedding blinds detectors, so holding input back comes first.
- Below ``low`` x ceiling it is released and everything runs at full size again.

Besides, the worker sizes its batches by the peak RSS each one reached (:meth:`take_peak`):
a batch that passed the high mark halves the next ones, a batch that stayed under the low
mark lets them grow back by a quarter, up to ``batch_max_events`` (a batch's working
memory, parsed columns and detector temporaries, is the largest single use).

The queue never refuses while it is empty: the pipeline is then idle and what holds the
memory is state or slack, which shedding and trimming release; refusing would only blind
the detectors. A ceiling below what the process needs at rest is reported
(``memory_ceiling_below_rest``) instead of locking every source out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import time
from collections.abc import Callable

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["MemoryGovernor", "current_rss", "release_free_memory"]

log = structlog.get_logger("shopwatch.memory")

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss() -> int:
    """This process's resident set size in bytes (Linux ``/proc``; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _load_trim()


def release_free_memory() -> bool:
    """Hand the C allocator's free pages back to the system (glibc ``malloc_trim``); False if absent."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


class MemoryGovernor:
    """Admission control on the process's RSS against a ceiling (see the module docstring)."""

    def __init__(
        self,
        ceiling_bytes: int,
        *,
        high: float = 0.85,
        low: float = 0.7,
        critical: float = 0.95,
        sample_s: float = 0.02,
        read_rss: Callable[[], int] = current_rss,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if ceiling_bytes < 1 or not 0 < low < high <= critical <= 1:
            raise ValueError(
                "a memory ceiling needs ceiling > 0 and 0 < low < high <= critical <= 1"
            )
        self.ceiling = ceiling_bytes
        self.high = int(high * ceiling_bytes)
        self.critical = int(critical * ceiling_bytes)
        self.low = int(low * ceiling_bytes)
        self.sample_s = sample_s
        self._read = read_rss
        self._lock = threading.Lock()
        self._rss = read_rss()
        self._read_at = time.monotonic()
        self._pressed = False
        self.peak = self._rss
        self._window_peak = self._rss
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pressed_total = 0
        self._warned_rest = 0.0
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._g_rss = Gauge("shopwatch_memory_rss_bytes", "Resident set size.", registry=r)
        self._g_ceiling = Gauge(
            "shopwatch_memory_ceiling_bytes", "runtime.memory_max_bytes.", registry=r
        )
        self._g_pressed = Gauge(
            "shopwatch_memory_pressed",
            "1 while RSS is over the high-water mark and input is held back.",
            registry=r,
        )
        self.relief = Counter(
            "shopwatch_memory_relief",
            "What was done to bring memory under its ceiling, by action.",
            ["action"],
            registry=r,
        )
        self._g_ceiling.set(ceiling_bytes)
        self._g_rss.set(self._rss)

    def start(self) -> None:
        """Sample the RSS every ``sample_s`` in a daemon thread (until :meth:`stop`)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._sample, name="shopwatch-memory", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """End the sampling thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    def _sample(self) -> None:
        while not self._stop.wait(self.sample_s):
            self.refresh()

    def rss(self) -> int:
        """The RSS: the sampler's last reading, or read again when it is older than ``sample_s``."""
        now = time.monotonic()
        if now - self._read_at >= self.sample_s and self._thread is None:
            with self._lock:
                if now - self._read_at >= self.sample_s:
                    self._update(self._read(), now)
        return self._rss

    def take_peak(self) -> int:
        """The highest RSS seen since the last call (or since start), and start a new window."""
        self.rss()  # a reading of its own when no sampler runs
        with self._lock:
            peak, self._window_peak = max(self._window_peak, self._rss), self._rss
        return peak

    def _update(self, rss: int, now: float) -> None:
        self._rss = rss
        self._read_at = now
        self.peak = max(self.peak, rss)
        self._window_peak = max(self._window_peak, rss)
        self._g_rss.set(rss)
        if not self._pressed and rss > self.high:
            self._pressed = True
            self.pressed_total += 1
            self._g_pressed.set(1)
            log.warning(
                "memory_pressed",
                rss_mb=round(rss / 2**20),
                ceiling_mb=round(self.ceiling / 2**20),
            )
        elif self._pressed and rss < self.low:
            self._pressed = False
            self._g_pressed.set(0)
            log.info("memory_released", rss_mb=round(rss / 2**20))

    def refresh(self) -> int:
        """Read the RSS now (after freeing memory), whatever the age of the last reading."""
        with self._lock:
            self._update(self._read(), time.monotonic())
        return self._rss

    @property
    def pressed(self) -> bool:
        """True from passing the high-water mark until falling under the low one."""
        self.rss()
        return self._pressed

    def trim(self) -> None:
        """Give freed memory back to the system, counted; then read the RSS again."""
        if release_free_memory():
            self.relief.labels("trim").inc()
        self.refresh()

    def at_rest_over(self) -> None:
        """Report (at most once a minute) that memory stays over the mark while idle."""
        now = time.monotonic()
        if now - self._warned_rest >= 60.0:
            self._warned_rest = now
            self.relief.labels("none_left").inc()
            log.error(
                "memory_ceiling_below_rest",
                rss_mb=round(self._rss / 2**20),
                ceiling_mb=round(self.ceiling / 2**20),
                hint="raise runtime.memory_max_bytes: the process needs more than this at rest",
            )
