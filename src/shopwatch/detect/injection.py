"""SQL injection and XSS found by a real tokenizer: libinjection, on each decoded value.

Regexes over the raw URL see ``'%20OR%201=1--`` only where someone wrote that pattern.
libinjection (Nick Galbreath's tokenizer, used by ModSecurity and the OWASP Core Rule Set)
tokenizes a value as SQL in each of its quoting contexts and as HTML, and compares the
token fingerprint with those of known injections: it needs no list of payloads.

``|injection`` on a request field (``url.original``, ``url.path``, ``url.query``,
``http.request.body.content``, ``http.request.referrer``) reads it as the values an
application would see: the query and a form body split into parameters, a JSON body
walked to its strings, each path segment; each value URL-decoded by the standard library
(``+`` as a space, then a second time where ``%`` remains, as a double-encoded payload
needs) and HTML entities unescaped. The first value libinjection calls an injection is
given as ``sqli:<name>:<fingerprint>`` or ``xss:<name>`` (``name`` the parameter, ``path``
for a segment), null when there is none. It runs once per distinct field value, and skips
values made only of letters, digits, ``_``, ``.`` and ``-`` (an id, a slug, a number:
libinjection finds nothing in one word).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import polars as pl

from shopwatch.detect.conditions import per_distinct

__all__ = ["injection_in", "injection_of", "values_of"]

#: A value that cannot hold an injection: one word of letters, digits, '_', '.', '-'.
_PLAIN = re.compile(r"[A-Za-z0-9_.\-]*")
#: Values longer than this are read up to it (a tokenizer pass is linear, a body is not
#: bounded); an attack in the first 4 KiB of a value is still seen.
MAX_VALUE = 4096
#: At most this many values of one field are read (a request of 10,000 parameters).
MAX_VALUES = 256

try:  # the C tokenizer; a build without it raises at rule load, never at run time
    import libinjection as _libinjection
except ImportError:  # pragma: no cover - a dependency of the package
    _libinjection = None


def _decoded(value: str) -> str:
    """``value`` as the application reads it: once more URL-decoded where ``%`` is left,
    then HTML entities unescaped (``&#39;`` is ``'``)."""
    if "%" in value:
        value = unquote_plus(value)
    if "&" in value:
        value = html.unescape(value)
    return value


def _strings(node: Any, name: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield name, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, str(key))
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item, name)


def values_of(text: str) -> list[tuple[str, str]]:
    """The (name, decoded value) pairs of a request target or body.

    >>> values_of("/p/a%2527b/x?q=1%27+or+1%3D1&q2=%253Cscript%253E")
    [('path', "a'b"), ('q', "1' or 1=1"), ('q2', '<script>')]
    >>> values_of('{"user": {"name": "x\\' or 1=1 --"}}')
    [('name', "x' or 1=1 --")]
    """
    out: list[tuple[str, str]] = []
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            out.extend(_strings(json.loads(text), "body"))
        except (ValueError, RecursionError):  # not JSON, or nested past what a walk can read
            out = []
        else:
            return [(n, _decoded(v)) for n, v in out if not _PLAIN.fullmatch(v)][:MAX_VALUES]
    path, sep, query = text.partition("?")
    if not sep and "=" in path and not path.startswith("/"):
        path, query = "", path  # a form body: name=value&...
    for segment in path.split("/"):
        if segment and not _PLAIN.fullmatch(segment):
            out.append(("path", _decoded(unquote_plus(segment))))
    if query:
        for name, value in parse_qsl(query, keep_blank_values=True):
            if not _PLAIN.fullmatch(value):
                out.append((name, _decoded(value)))
    return [(n, v) for n, v in out if v][:MAX_VALUES]


def injection_in(text: str | None) -> str | None:
    """``sqli:<name>:<fingerprint>`` or ``xss:<name>`` for the first injection in ``text``.

    >>> injection_in("/search?q=1%27%20or%20%271%27%3D%271")
    'sqli:q:s&sos'
    >>> injection_in("/search?q=O%27Reilly+books") is None
    True
    """
    if not text or _libinjection is None:
        return None
    for name, value in values_of(text):
        # A lone surrogate (a JSON "\ud800") cannot go to the C tokenizer: it reads it as
        # the replacement character, so one odd value never fails the batch it is in.
        value = value[:MAX_VALUE].encode("utf-8", "replace").decode("utf-8")
        sqli = _libinjection.is_sql_injection(value)
        if sqli["is_sqli"]:
            return f"sqli:{name}:{sqli['fingerprint']}"
        if _libinjection.is_xss(value)["is_xss"]:
            return f"xss:{name}"
    return None


def injection_of(expr: pl.Expr) -> pl.Expr:
    """``|injection``: :func:`injection_in` of each value, computed once per distinct value."""
    if _libinjection is None:  # pragma: no cover
        raise ImportError("libinjection-python is not installed: pip install libinjection-python")

    return per_distinct(expr, injection_in, pl.String())
