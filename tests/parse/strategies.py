"""Hypothesis strategies for hostile input: lines shaped like each format, with every field
drawn from values that have broken parsers (huge numbers, years outside 1..9999, odd
offsets, deep nesting, duplicate keys, control characters, odd Unicode), and plain noise.

The property tests (``tests/parse/test_properties.py``) and ``bench/fuzz.py`` both use them.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from shopwatch.contract import EVENT_SCHEMA

FIELDS = sorted(EVENT_SCHEMA)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

#: Text with the characters parsers split on, escapes, controls and non-BMP letters.
_ALPHABET = st.one_of(
    st.sampled_from(list(' "\\[]{}:;,.-+/=?&%\t\x00\x0b\x1b\u00a0\u2028\ufeffé中😀0123456789')),
    st.characters(codec="utf-8"),
)
noise = st.text(_ALPHABET, max_size=40)
#: Integers as text: small, near the 64-bit edges, and far beyond them.
int_text = st.one_of(
    st.integers(-10, 70_000).map(str),
    st.sampled_from(
        [
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "18446744073709551616",
            "253402300799",
            "253402300800",
            "-62135596800",
            "-62135596801",
            "0" * 30 + "1",
            "9" * 40,
        ]
    ),
    st.integers(-(10**30), 10**30).map(str),
)
#: Numbers as text, including forms that are not plain decimals.
number_text = st.one_of(
    int_text,
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e11", "1e308", "1e400", "-0.0", "0.000001", "nan", "inf", ".5", "5."]),
)
year_text = st.one_of(
    st.integers(1, 9999).map(lambda y: f"{y:04d}"),
    st.sampled_from(["0000", "-001", "10000", "99999", "+2024", "0001", "9999"]),
)
two = st.integers(0, 99).map(lambda n: f"{n:02d}")
offset_text = st.one_of(
    st.sampled_from(["+0000", "-1400", "+1400", "-2359", "+2359", "+9999", "Z", ""]),
    st.tuples(st.sampled_from("+-"), two, two).map("".join),
)
ip_text = st.one_of(st.ip_addresses().map(str), noise)


def _maybe(strategy: st.SearchStrategy[str], other: st.SearchStrategy[str] = noise) -> Any:
    """``strategy`` or ``other``, for fields that are as often odd as not."""
    return st.one_of(strategy, other)


def _num(low: int, high: int, width: int = 2) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:0{width}d}")


class _Fields:
    """Draws each field well formed, except for the one or two chosen to be hostile, so a
    line reaches the code that reads that field instead of failing its pattern early."""

    def __init__(self, draw: st.DrawFn, count: int) -> None:
        self.draw = draw
        self.hostile = set(draw(st.lists(st.integers(0, count - 1), max_size=2)))
        self.at = 0

    def __call__(self, good: st.SearchStrategy[str], bad: st.SearchStrategy[str] = noise) -> str:
        self.at += 1
        return self.draw(bad if self.at - 1 in self.hostile else good)


ipv4 = st.ip_addresses(v=4).map(str)
any_ip = st.ip_addresses().map(str)
safe_text = st.text(st.sampled_from("abcXYZ019 /.-_=?&%é中"), max_size=20)
small_int = st.integers(0, 100_000).map(str)
offsets = st.sampled_from(["+0000", "-0700", "+0530", "+1400", "-1400"])


@st.composite
def nginx_line(draw: st.DrawFn) -> str:
    """An access-log line, well formed but for a field or two."""
    f = _Fields(draw, 16)
    ts = f"{f(_num(1, 28), two)}/{f(st.sampled_from(MONTHS))}/{f(_num(1970, 2100, 4), year_text)}:{f(_num(0, 23), two)}:{f(_num(0, 59), two)}:{f(_num(0, 59), two)} {f(offsets, offset_text)}"
    request = "{} {} {}".format(
        f(st.sampled_from(["GET", "POST", "get", "G"]), st.sampled_from(["\x16\x03", "-", ""])),
        f(safe_text.map(lambda t: "/" + t.replace(" ", "%20"))),
        f(st.sampled_from(["HTTP/1.1", "HTTP/2.0"]), st.sampled_from(["HTTP/1", "", "HTTP/1.1x"])),
    )
    extras = f(
        st.floats(0, 100).map(lambda x: f" {x:.3f}"),
        st.lists(
            st.one_of(number_text, ip_text.map(lambda t: f'"{t}"'), any_ip.map(lambda t: f'"{t}"')),
            max_size=4,
        ).map(lambda xs: "".join(" " + x for x in xs)),
    )
    line = '{} {} {} [{}] "{}" {} {} "{}" "{}"{}'.format(
        f(any_ip, ip_text),
        f(st.just("-")),
        f(st.just("-"), safe_text),
        ts,
        request,
        f(st.integers(100, 599).map(str), st.sampled_from(["-", "2000", "99"])),
        f(small_int, st.one_of(int_text, st.just("-"))),
        f(safe_text),
        f(safe_text),
        extras,
    )
    return _cut(draw, line)


def _cut(draw: st.DrawFn, line: str) -> str:
    """Sometimes the line is truncated (a half-written line)."""
    if draw(st.integers(0, 9)) == 0:
        return line[: draw(st.integers(0, len(line)))]
    return line


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(_ALPHABET, max_size=20),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), noise), inner, max_size=4),
    ),
    max_leaves=12,
)
_iso_ts = st.builds(
    lambda y, mo, d, h, off: f"{y}-{mo}-{d}T{h}:00:00{off}",
    st.one_of(*[_num(1970, 2100, 4)] * 3, year_text),
    st.one_of(*[_num(1, 12)] * 3, two),
    st.one_of(*[_num(1, 28)] * 3, two),
    st.one_of(*[_num(0, 23)] * 3, two),
    st.sampled_from(["Z", "+14:00", "-14:00", "", ".123456789Z", "+99:99"]),
)
ts_value = st.one_of(
    *[_iso_ts] * 6,
    *[st.integers(0, 4_102_444_800_000)] * 2,
    st.integers(-(2**63), 2**64),
    int_text,
    st.floats(allow_nan=False, allow_infinity=False),
    _SCALARS,
)


def _render(pairs: list[tuple[str, Any]]) -> str:
    """A JSON object from key/value pairs (keys may repeat, as JSON allows)."""
    return "{" + ",".join(f"{json.dumps(k)}:{_dump(v)}" for k, v in pairs) + "}"


def _dump(value: Any) -> str:
    return value.raw if isinstance(value, _Raw) else json.dumps(value)


class _Raw:
    """JSON text placed verbatim (numbers JSON can write but Python cannot: ``1e400``)."""

    def __init__(self, raw: str) -> None:
        self.raw = raw


def _nested_as(key: str, value: Any, cut: int) -> tuple[str, Any]:
    """``key`` written nested down to part ``cut`` and dotted below."""
    parts = key.split(".")
    cut = min(cut, len(parts) - 1)
    head, rest = parts[:cut], ".".join(parts[cut:])
    node: Any = {rest: value} if not isinstance(value, _Raw) else _Raw(f'{{"{rest}":{value.raw}}}')
    for part in reversed(head):
        node = {part: node} if not isinstance(node, _Raw) else _Raw(f'{{"{part}":{node.raw}}}')
    return head[0] if head else rest, node


@st.composite
def ecs_line(draw: st.DrawFn) -> str:
    """An NDJSON line: contract fields nested and dotted, repeated, deep, huge, odd."""
    pairs: list[tuple[str, Any]] = []
    if draw(st.integers(0, 9)):
        pairs.append(("@timestamp", draw(ts_value)))
    if draw(st.integers(0, 9)):
        pairs.append(("event.dataset", draw(st.sampled_from(["shop.auth", "http.access", ""]))))
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=6)):
        value = draw(
            st.one_of(
                _JSON,
                number_text.map(_Raw),
                st.sampled_from(["1e400", "-1e400", "1" * 400, "1.5e-400"]).map(_Raw),
            )
        )
        pairs.append(_nested_as(key, value, draw(st.integers(0, 3))))
    depth = draw(st.sampled_from([0, 0, 0, 5, 31, 32, 33, 200, 1000, 1100]))
    if depth:
        kind = draw(st.sampled_from(["{", "["]))
        inner = '{"a":' * depth + "1" + "}" * depth if kind == "{" else "[" * depth + "]" * depth
        pairs.append((draw(st.sampled_from(["user.roles", "x", "source"])), _Raw(inner)))
    draw(st.randoms()).shuffle(pairs)
    line = _render(pairs)
    if draw(st.integers(0, 19)) == 0:  # a top level that is not an object
        line = draw(st.sampled_from(["[]", "1", '"x"', "null", line + "x"]))
    return _cut(draw, line)


_SSHD = [
    "Failed password for {u} from {ip} port {port} ssh2",
    "Failed password for invalid user {u} from {ip} port {port} ssh2",
    "Accepted publickey for {u} from {ip} port {port} ssh2",
    "Invalid user {u} from {ip} port {port}",
    "Received disconnect from {ip} port {port}:11: bye",
    "Connection closed by authenticating user {u} {ip} port {port} [preauth]",
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={u}",
    "{u} : TTY=pts/0 ; PWD=/root ; USER=root ; COMMAND=/bin/ls",
    "FAILED su for {u} by {u}",
]


@st.composite
def syslog_line(draw: st.DrawFn) -> str:
    """A syslog line in RFC 3164, RFC 5424 or rsyslog's RFC 3339 form, well formed but for a
    field or two."""
    f = _Fields(draw, 16)
    message = draw(st.sampled_from(_SSHD)).format(
        u=f(st.just("root")), ip=f(any_ip, ip_text), port=f(small_int, int_text)
    )
    tag = draw(st.sampled_from(["sshd", "sudo", "su", "sshd(pam_unix)", "cron", "x"]))
    pid = f(small_int, int_text)
    pri = f(st.integers(0, 191).map(str), int_text)
    kind = draw(st.sampled_from(["3164", "5424", "3339"]))
    iso = "{}-{}-{}T{}:{}:{}{}{}".format(
        f(_num(1970, 2100, 4), year_text),
        f(_num(1, 12), two),
        f(_num(1, 28), two),
        f(_num(0, 23), two),
        f(_num(0, 59), two),
        f(_num(0, 59), two),
        draw(st.sampled_from(["", ".003", ".123456789"])),
        f(
            st.sampled_from(["Z", "+02:00", "-07:00"]),
            st.sampled_from(["+14:00", "-14:00", "", "+23:59"]),
        ),
    )
    host = f(st.just("shop-web-1"))
    if kind == "3164":
        month, mday = draw(st.sampled_from(MONTHS)), f(st.integers(1, 31).map(str), two)
        clock = f"{f(_num(0, 23), two)}:{f(_num(0, 59), two)}:{f(_num(0, 59), two)}"
        line = f"<{pri}>{month} {mday:>2} {clock} {host} {tag}[{pid}]: {message}"
    elif kind == "5424":
        line = f"<{pri}>1 {iso} {host} {tag} {pid} - - {message}"
    else:
        line = f"<{pri}>{iso} {host} {tag}[{pid}]: {message}"
    return _cut(draw, line)


@st.composite
def vpcflow_line(draw: st.DrawFn) -> str:
    """A flow record, well formed but for a field or two."""
    f = _Fields(draw, 13)
    start = draw(st.integers(0, 4_000_000_000))
    fields = [
        f(st.just("2"), int_text),
        "123456789012",
        "eni-0a1",
        f(any_ip, st.one_of(ip_text, st.just("-"))),
        f(any_ip, st.one_of(ip_text, st.just("-"))),
        *(f(small_int, st.one_of(int_text, st.just("-"))) for _ in range(5)),
        f(st.just(str(start)), int_text),
        f(st.integers(0, 3600).map(lambda d: str(start + d)), int_text),
        f(st.sampled_from(["ACCEPT", "REJECT"]), st.sampled_from(["-", "accept", ""])),
        f(st.just("OK"), st.sampled_from(["NODATA", "SKIPDATA", "ok"])),
    ]
    return _cut(draw, " ".join(fields))


#: Line strategies by format name; ``auto`` mixes them all.
LINE_STRATEGIES: dict[str, st.SearchStrategy[str]] = {
    "nginx": nginx_line(),
    "ecs": ecs_line(),
    "syslog": syslog_line(),
    "vpcflow": vpcflow_line(),
}
LINE_STRATEGIES["auto"] = st.one_of(*LINE_STRATEGIES.values())


def lines_of(fmt: str, max_size: int = 12) -> st.SearchStrategy[list[str]]:
    """Lists of lines for ``fmt``: shaped lines mixed with noise and blank lines."""
    one = st.one_of(*[LINE_STRATEGIES[fmt]] * 6, noise, st.just(""))
    return st.lists(one.map(_one_line), max_size=max_size)


def _one_line(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ")


#: Bytes of a file: shaped lines encoded in UTF-8 or Latin-1, joined with newlines, or raw.
def file_bytes(fmt: str) -> st.SearchStrategy[bytes]:
    """What a log file of ``fmt`` might hold, including invalid UTF-8 and stray ``\\r``."""
    encode: Callable[[str], bytes] = lambda s: s.encode("utf-8", "surrogatepass")  # noqa: E731
    shaped = lines_of(fmt).map(lambda ls: b"\n".join(encode(s) for s in ls))
    gzipped = st.tuples(shaped, st.floats(0, 1)).map(
        lambda t: (z := gzip.compress(t[0]))[: max(2, int(len(z) * t[1]))]
    )
    return st.one_of(
        shaped,
        st.tuples(shaped, st.binary(max_size=30), shaped).map(lambda t: b"\r\n".join(t)),
        st.binary(max_size=200),
        gzipped,
        st.binary(max_size=60).map(lambda b: b"\x1f\x8b" + b),
    )
