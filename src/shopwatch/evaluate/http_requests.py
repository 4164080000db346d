"""Raw HTTP/1.1 request files (CSIC 2010): cut them into requests, read each into an event.

A file is requests concatenated, each a request line ``METHOD target HTTP/x.y``, header
lines, an empty line and, when the headers give a Content-Length, a body. Line ends may
be CRLF or LF, mixed (CSIC's original normal test file ends a GET with CRLF CRLF LF and a
POST body with LF LF); a file with lone CRs only is read with CR as its line end. Every
request keeps its position in the file, readable or not, so that predictions can be
joined with anyone else's numbering of the same file.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, NamedTuple

import polars as pl

from shopwatch.contract import conform, empty_events
from shopwatch.parse.base import REJECT_SCHEMA, RejectReason

__all__ = [
    "EPOCH",
    "Chunk",
    "HttpRequest",
    "RequestFile",
    "parse_request",
    "read_requests",
    "split_requests",
]

#: Event time of the first request read (the CSIC dataset was published in 2010).
EPOCH: Final = datetime(2010, 6, 1, tzinfo=UTC)

_BOM: Final = b"\xef\xbb\xbf"
#: Where a new request starts: a method token of capital letters, a target and a version,
#: or CSIC's own methods followed by anything (so a broken request line of theirs is a
#: malformed request of its own, not part of the one before).
_START = re.compile(r"[A-Z]+ \S+ HTTP/\d|(?:GET|POST|PUT) ")
_LINE_END = re.compile(r"(\r\n|\n)")
_REQUEST_LINE = re.compile(r"^([A-Z]+) (\S+) (HTTP/\d\.\d)[ \t]*$")
_HEADER = re.compile(r"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$")
_CONTENT_LENGTH = re.compile(r"^content-length:[ \t]*(\d+)[ \t]*$", re.I)
_ABSOLUTE = re.compile(r"^https?://([^/?#]*)(.*)$", re.I)
_PORT = re.compile(r":\d*$")
_SESSION = re.compile(r"(?:^|;)\s*JSESSIONID=([^;\s]+)", re.I)


class _Malformed(Exception):
    """A request that cannot be read (private: callers get a reject row instead)."""

    def __init__(self, reason: RejectReason) -> None:
        self.reason = reason
        super().__init__(reason.value)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One raw request: request line, headers (lower-case names) and body."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: str | None
    #: Size of request line, headers, blank line and body with CRLF line ends, in bytes
    #: (the same whatever line ends the file used).
    size: int

    def event(self) -> dict[str, Any]:
        """The request as contract fields (``http.access``), without time, id or address.

        An absolute target (``http://host:port/p?q``) is ``url.full``; ``url.original`` is
        its path and query, as an access log would show it.
        """
        absolute = _ABSOLUTE.match(self.target)
        authority, path_query = absolute.groups() if absolute else (None, self.target)
        host = self.headers.get("host") or authority
        full = self.target if absolute else (f"http://{host}{path_query}" if host else None)
        path_query = path_query or "/"
        domain = _PORT.sub("", host) if host else None
        path, _, query = path_query.partition("?")
        cookie = self.headers.get("cookie")
        session = _SESSION.search(cookie) if cookie else None
        return {
            "event.dataset": "http.access",
            "event.action": "request",
            "http.version": self.version.removeprefix("HTTP/"),
            "http.request.method": self.method,
            "http.request.referrer": self.headers.get("referer"),
            "http.request.bytes": self.size,
            "http.request.body.content": self.body,
            "url.original": path_query,
            "url.path": path,
            "url.query": query or None,
            "url.full": full,
            "url.domain": domain or None,
            "user_agent.original": self.headers.get("user-agent"),
            "shop.session.id": session.group(1) if session else None,
        }


def parse_request(chunk: str) -> HttpRequest:
    """Read one request (a chunk from :func:`split_requests`); raises ``_Malformed``.

    Line ends may be CRLF or LF. Header names are case-insensitive (kept lower-case);
    a repeated header is joined with ``", "`` (``"; "`` for Cookie); whitespace-only lines
    among the headers are skipped. Empty or blank lines around the body are framing.
    """
    text = chunk.replace("\r\n", "\n")
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    line = _REQUEST_LINE.match(lines[0])
    if line is None:
        raise _Malformed(RejectReason.NO_MATCH)
    kept = [lines[0].rstrip(" \t")]
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        if not raw.strip():
            continue
        header = _HEADER.match(raw)
        if header is None:
            raise _Malformed(RejectReason.BAD_FIELD)
        kept.append(raw)
        name, value = header.group(1).lower(), header.group(2)
        if name in headers:
            value = headers[name] + ("; " if name == "cookie" else ", ") + value
        headers[name] = value
    content = body.strip("\n")
    content = content if content.strip() else ""
    size = sum(len(x) + 2 for x in kept) + 2 + len(content) + content.count("\n")
    return HttpRequest(line.group(1), line.group(2), line.group(3), headers, content or None, size)


class Chunk(NamedTuple):
    """A piece of a request file: its first line number, its text, and if it is a request.

    Only text before the first request line is not a request.
    """

    line_no: int
    text: str
    is_request: bool


def split_requests(text: str) -> list[Chunk]:
    """The requests of ``text`` in file order, cut before each request line.

    A request line is ``METHOD target HTTP/digit`` with a method of capital letters, or
    any line that starts with ``GET``, ``POST`` or ``PUT`` and a space. The
    line after the headers of a request with a Content-Length above 0 is its body (one
    URL-encoded line in CSIC) and is never cut, whatever it says; every other line that is
    a request line starts a new request. Only that one line is protected, so a wrong
    Content-Length cannot swallow the requests after it.
    Text before the first request line is a chunk of its own (``is_request`` false)
    unless it is blank.

    >>> split_requests("GET /a HTTP/1.1\\r\\n\\r\\n\\r\\nHEAD /b HTTP/1.1\\r\\n\\r\\n")
    [Chunk(line_no=1, text='GET /a HTTP/1.1\\r\\n\\r\\n\\r\\n', is_request=True), \
Chunk(line_no=4, text='HEAD /b HTTP/1.1\\r\\n\\r\\n', is_request=True)]
    """
    pieces = _LINE_END.split(text)  # line, end, line, end, ..., last line (maybe "")
    starts: list[tuple[int, int, bool]] = []  # (offset, line number, is_request)
    in_head = False  # between a request line and the empty line after its headers
    has_body = False  # the current request declares a Content-Length above 0
    is_body = False  # this line is the body of the current request
    offset = 0
    for k in range(0, len(pieces), 2):
        line, line_no = pieces[k], k // 2 + 1
        if is_body:
            is_body = False
        elif _START.match(line):
            starts.append((offset, line_no, True))
            in_head, has_body = True, False
        elif in_head:
            if not line:
                in_head, is_body = False, has_body
            elif declared := _CONTENT_LENGTH.match(line):
                has_body = int(declared.group(1)) > 0
        elif not starts and line.strip():
            starts.append((offset, line_no, False))
        offset += len(line) + (len(pieces[k + 1]) if k + 1 < len(pieces) else 0)
    if not starts:
        return []
    ends = [s[0] for s in starts[1:]] + [len(text)]
    return [
        Chunk(n, text[a:b], is_request) for (a, n, is_request), b in zip(starts, ends, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class RequestFile:
    """The requests of one file as ``http.access`` events, and the ones that were malformed."""

    path: Path
    #: One event per readable request, in file order.
    batch: pl.DataFrame
    #: REJECT_SCHEMA; ``line_no`` is the first line of the request (or of leading text).
    rejects: pl.DataFrame
    #: Requests in the file, readable or not (leading text that is no request not counted).
    requests: int
    #: Position in the file (from 0, among all requests) of each unreadable request.
    rejected_positions: tuple[int, ...]

    def positions(self) -> list[int]:
        """Position in the file of each row of ``batch``.

        >>> RequestFile(Path("f"), empty_events(), pl.DataFrame(), 4, (1, 2)).positions()
        [0, 3]
        """
        rejected = set(self.rejected_positions)
        return [k for k in range(self.requests) if k not in rejected]


def read_requests(path: Path, *, start: datetime = EPOCH) -> RequestFile:
    """Every request of a file (gzip or plain, told by its first bytes) as an event.

    Events are in file order, ``start`` plus one second each, with ``event.id``
    ``<file name>:<line number>`` and no client address (the files have none). A UTF-8
    byte order mark at the start is dropped; the rest is read as Latin-1. Host becomes
    ``url.domain``, Referer ``http.request.referrer``, the JSESSIONID cookie
    ``shop.session.id``; the other headers (Content-Type, Accept, ...) have no contract
    field and are dropped. A request that cannot be read is a reject, never an exception,
    and keeps its position. Raises ``OSError`` when the file cannot be read.
    """
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, zlib.error) as err:
            raise OSError(f"not a readable gzip file ({err})") from err
    text = data.removeprefix(_BOM).decode("latin-1")  # every byte is a character
    if "\n" not in text:
        text = text.replace("\r", "\n")
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    rejected: list[int] = []
    requests = 0
    for line_no, chunk, is_request in split_requests(text):
        try:
            if not is_request:
                raise _Malformed(RejectReason.NO_MATCH)
            request = parse_request(chunk)
        except _Malformed as err:
            reject = {"line_no": line_no, "raw": chunk[:512], "reason": err.reason.value}
            rejects.append({"source": path.name, **reject, "format": "csic"})
            if is_request:
                rejected.append(requests)
                requests += 1
            continue
        requests += 1
        event = request.event()
        event["@timestamp"] = start + timedelta(seconds=len(rows))
        event["event.id"] = f"{path.name}:{line_no}"
        rows.append(event)
    batch = conform(pl.DataFrame(rows, infer_schema_length=None)) if rows else empty_events()
    return RequestFile(
        path, batch, pl.DataFrame(rejects, schema=REJECT_SCHEMA), requests, tuple(rejected)
    )
