"""Live sources: file tail, HTTP ingest, syslog. They deliver raw lines; parsing comes later.

See :mod:`shopwatch.sources.base` for the concurrency model (asyncio loop in a background
thread, a bounded :class:`ChunkQueue` to the pipeline, :func:`ack` once processed).
"""

from shopwatch.sources.base import (
    AckToken,
    ChunkQueue,
    RawChunk,
    Source,
    SourceMetrics,
    SourceRunner,
    ack,
)
from shopwatch.sources.http import HttpSource
from shopwatch.sources.registry import FileOffset, OffsetRegistry
from shopwatch.sources.syslog import SyslogSource
from shopwatch.sources.tail import TailSource

__all__ = [
    "AckToken",
    "ChunkQueue",
    "FileOffset",
    "HttpSource",
    "OffsetRegistry",
    "RawChunk",
    "Source",
    "SourceMetrics",
    "SourceRunner",
    "SyslogSource",
    "TailSource",
    "ack",
]
