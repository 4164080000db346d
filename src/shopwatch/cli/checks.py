"""Checks of a whole configuration before ``shopwatch run`` starts anything.

A mistake found here is one clear message and exit 2, instead of a service that starts
and then fails on every batch (a mistyped format) or on first use (a missing folder).
"""

from __future__ import annotations

import glob
import ipaddress
import os
from pathlib import Path

from shopwatch.config import Settings

__all__ = ["WILDCARD_HOSTS", "is_wildcard", "problems", "wildcard_listeners"]

#: Addresses that bind every interface of the machine.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "", "*"})


def is_wildcard(host: str) -> bool:
    """Whether binding ``host`` listens on every interface.

    >>> is_wildcard("0.0.0.0"), is_wildcard("127.0.0.1")
    (True, False)
    """
    return host.strip("[]") in WILDCARD_HOSTS


def _known_formats() -> list[str]:
    from shopwatch.parse import format_names

    return list(format_names())


def _check_port(where: str, port: int, out: list[str]) -> None:
    if not 0 <= port <= 65535:
        out.append(f"{where} is {port}; a port is 0 to 65535 (0 picks a free one)")


def _check_host(where: str, host: str, out: list[str]) -> None:
    if is_wildcard(host) or host == "localhost":
        return
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        out.append(f"{where} is {host!r}; give an IP address to bind, such as 127.0.0.1")


def _check_file(i: int, path: str, out: list[str]) -> None:
    where = f"sources.files[{i}].path"
    expanded = os.path.expanduser(path)
    if glob.has_magic(expanded):
        folder = Path(*_until_magic(Path(expanded).parts))
    else:
        folder = Path(expanded).parent
    if not folder.is_dir():
        out.append(f"{where} {path!r}: the folder {str(folder)!r} does not exist")
    elif not os.access(folder, os.R_OK | os.X_OK):
        out.append(f"{where} {path!r}: the folder {str(folder)!r} cannot be read")
    elif not glob.has_magic(expanded) and Path(expanded).is_dir():
        out.append(f"{where} {path!r} is a folder; name a file or a glob such as '*.log'")


def _until_magic(parts: tuple[str, ...]) -> list[str]:
    fixed: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return fixed or ["."]


def _check_data_dir(data_dir: Path, out: list[str]) -> None:
    existing = data_dir
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        out.append(f"data_dir {str(data_dir)!r}: {str(existing)!r} is not a folder")
    elif not os.access(existing, os.W_OK | os.X_OK):
        out.append(f"data_dir {str(data_dir)!r}: {str(existing)!r} is not writable")


def problems(settings: Settings) -> list[str]:
    """Every mistake in ``settings`` that would stop or break ``run``, each one sentence."""
    out: list[str] = []
    known = _known_formats()
    for i, spec in enumerate(settings.sources.files):
        if spec.format not in known:
            out.append(
                f"sources.files[{i}].format is {spec.format!r}; known formats: {', '.join(known)}"
            )
        _check_file(i, spec.path, out)
    listeners: list[tuple[str, str, int, set[str]]] = []
    if settings.web.enabled:
        listeners.append(("web", settings.web.host, settings.web.port, {"tcp"}))
    http = settings.sources.http
    if http.enabled:
        listeners.append(("sources.http", http.host, http.port, {"tcp"}))
        if http.token is None or not http.token.get_secret_value():
            out.append(
                "sources.http is enabled without a token: set sources.http.token "
                "(SHOPWATCH_SOURCES__HTTP__TOKEN)"
            )
    syslog = settings.sources.syslog
    if syslog is not None:
        listeners.append(("sources.syslog", syslog.host, syslog.port, set(syslog.protocols)))
    for name, host, port, _ in listeners:
        _check_port(f"{name}.port", port, out)
        _check_host(f"{name}.host", host, out)
    for a in range(len(listeners)):
        for b in range(a + 1, len(listeners)):
            name_a, host_a, port_a, proto_a = listeners[a]
            name_b, host_b, port_b, proto_b = listeners[b]
            same_host = host_a == host_b or is_wildcard(host_a) or is_wildcard(host_b)
            if port_a and port_a == port_b and same_host and proto_a & proto_b:
                out.append(f"{name_a}.port and {name_b}.port are both {port_a}; give each its own")
    _check_data_dir(settings.data_dir, out)
    return out


def wildcard_listeners(settings: Settings) -> list[str]:
    """The enabled listeners bound to every interface (``host: 0.0.0.0``), as ``name host:port``."""
    found: list[str] = []
    if settings.web.enabled and is_wildcard(settings.web.host):
        found.append(f"web {settings.web.host}:{settings.web.port}")
    http = settings.sources.http
    if http.enabled and is_wildcard(http.host):
        found.append(f"sources.http {http.host}:{http.port}")
    syslog = settings.sources.syslog
    if syslog is not None and is_wildcard(syslog.host):
        found.append(f"sources.syslog {syslog.host}:{syslog.port}")
    return found
