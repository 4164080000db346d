"""Syslog and auth.log lines: RFC 3164, RFC 5424, and rsyslog's RFC 3339-dated variant.

Header fields go to ``log.syslog.*``, ``host.name``, ``process.name`` (the tag without a
``(pam_unix)``-style suffix; ``log.syslog.appname`` keeps the tag as written) and
``process.pid``. Lines from sshd, sudo, su and PAM (``pam_unix``) are ``system.auth``,
the others ``system.syslog``; auth lines get their security meaning:

- sshd: ``ssh_login`` (``Accepted``/``Failed <method> for [invalid user] U from IP port P``,
  ``Invalid user U from IP``) with ``event.outcome`` and ``event.reason``
  (``password``/``publickey``/... on success; ``bad_password``, ``invalid_user``,
  ``bad_publickey``... on failure); ``ssh_break_in_attempt`` ("POSSIBLE BREAK-IN
  ATTEMPT"); ``ssh_disconnect`` ("Received disconnect", "Connection closed",
  "Disconnected from", "Disconnecting: Too many authentication failures").
- PAM ``authentication failure; ... rhost=R user=U``: ``auth_failure``, except in the
  old ``sshd(pam_unix)`` tag style, where that line is sshd's only record of a failed
  password and so becomes ``ssh_login``/failure (``bad_password``, or ``invalid_user``
  when no user is named). In modern logs sshd also writes ``Failed password`` for the
  same attempt, which is the one counted as ``ssh_login``. ``rhost`` goes to
  ``source.ip`` when it is an address, else to ``source.domain``.
- sudo (``U : TTY=... ; PWD=... ; USER=root ; COMMAND=...``): ``sudo``, failure when a
  complaint precedes ``TTY=`` (``not_in_sudoers``, ``bad_password``...).
- su: ``su`` for ``(to T) U on tty``, ``Successful su``/``FAILED su for T by U`` and the old
  ``su(pam_unix)`` "session opened" lines; ``user.name`` is the one who ran su.

RFC 3164 dates carry no year and no zone: they are read in ``ParseContext.timezone``, in
``ParseContext.year`` when given, else in the year that puts them at or before
``ParseContext.reference`` (see :func:`resolve_year`). A date outside the years 1 to 9999
once converted to UTC (RFC 5424 year ``0000``) is a ``bad_timestamp`` reject. A process id
or port too big for a 64-bit integer reads as null and the line stays: the port is in the
message text, which a client partly chooses (its user name), so it must not be able to
turn its own failed login into a reject.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from shopwatch.contract import conform
from shopwatch.parse.base import (
    MAX_TIME,
    MIN_TIME,
    ParseContext,
    Parsed,
    RejectReason,
    empty_rejects,
    event_id,
    make_rejects,
    valid_time,
)

__all__ = ["RFC3164", "RFC5424", "parse_syslog", "resolve_year", "sniff_syslog"]

FORMAT = "syslog"
#: Slack for clocks and late writes: a date up to this much after the reference still
#: belongs to the reference's year.
YEAR_SLACK = timedelta(days=1)

_TAG = r"(?:([^:\[\s][^:\[]{0,63}?)(?:\[(\d+)\])?: )?"
#: ``[<PRI>]Mmm dd hh:mm:ss host [tag[pid]: ]message``
RFC3164 = (
    r"^(?:<(\d{1,3})>)?((?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2} \d\d:\d\d:\d\d)"
    rf" (\S+) +{_TAG}(.*)$"
)
#: rsyslog's high-precision template: ``[<PRI>]2024-05-01T10:00:00.123+02:00 host tag[pid]: msg``
RFC3339_TRADITIONAL = rf"^(?:<(\d{{1,3}})>)?(\d{{4}}-\d\d-\d\dT\S+) (\S+) +{_TAG}(.*)$"
#: ``<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD]|- [MSG]``
RFC5424 = (
    r"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) "
    r'(-|(?:\[(?:[^\]"\\]|\\.|"(?:[^"\\]|\\.)*")*\])+)(?: (.*))?$'
)
_HEADER = ["_pri", "_ts", "_host", "_tag", "_pid", "_msg"]
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}
_IP = r"^[0-9.]+$|:"
_RFC3339 = "%Y-%m-%dT%H:%M:%S%.f%z"


def resolve_year(month: int, day: int, reference: datetime) -> int:
    """The year of a date without one: the reference's, unless that puts it after the reference.

    >>> resolve_year(12, 31, datetime(2025, 1, 2, tzinfo=UTC))
    2024
    >>> resolve_year(1, 2, datetime(2025, 1, 2, tzinfo=UTC))
    2025
    """
    try:
        candidate = datetime(reference.year, month, day, tzinfo=reference.tzinfo or UTC)
    except ValueError:  # 29 February outside a leap year: the previous year cannot be one either
        return reference.year - 1
    return reference.year - 1 if candidate > _plus_slack(reference) else reference.year


def _plus_slack(reference: datetime) -> datetime:
    """``reference + YEAR_SLACK``, held at the end of year 9999 (a file dated then is legal)."""
    last = MAX_TIME if reference.tzinfo else MAX_TIME.replace(tzinfo=None)
    return min(reference, last - YEAR_SLACK) + YEAR_SLACK


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC (naive reads as UTC); one that UTC cannot hold is held at the edge."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):  # 0001-01-01 at +01:00 is in year 0 in UTC
        return MIN_TIME if moment.year < 5000 else MAX_TIME


def _rfc3164_time(text: pl.Expr, ctx: ParseContext) -> pl.Expr:
    """``Mmm dd hh:mm:ss`` in the context's zone and year (or the reference rule), as UTC."""
    norm = text.str.replace(r" +", " ")

    def at(year: int) -> pl.Expr:
        naive = pl.concat_str(pl.lit(f"{year} "), norm).str.strptime(
            pl.Datetime("us"), "%Y %b %d %H:%M:%S", strict=False
        )
        return naive.dt.replace_time_zone(
            ctx.timezone, ambiguous="earliest", non_existent="null"
        ).dt.convert_time_zone("UTC")

    if ctx.year is not None:
        return at(ctx.year)
    reference = _utc(ctx.reference or datetime.now(UTC))
    this_year = at(reference.year)
    limit = _plus_slack(reference)
    return (
        pl.when(this_year.is_null() | (this_year > pl.lit(limit)))
        .then(at(reference.year - 1))
        .otherwise(this_year)
    )


def _rfc3339_time(text: pl.Expr, ctx: ParseContext) -> pl.Expr:
    """RFC 3339 with ``Z`` or an offset (none: the context's zone), as UTC."""
    text = text.str.replace(r"[Zz]$", "+00:00")
    aware = text.str.to_datetime(_RFC3339, time_unit="us", time_zone="UTC", strict=False)
    naive = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False)
    local = naive.dt.replace_time_zone(
        ctx.timezone, ambiguous="earliest", non_existent="null"
    ).dt.convert_time_zone("UTC")
    return pl.coalesce(aware, local)


def _headers(lines: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """Header columns for every line (nulls where no pattern matched)."""
    line = pl.col("line")
    is5424 = line.str.contains(r"^<\d{1,3}>1 ")
    is3339 = line.str.contains(r"^(?:<\d{1,3}>)?\d{4}-\d\d-\d\dT")
    frame = lines.with_columns(is5424.alias("_5424"), (is3339 & ~is5424).alias("_3339"))
    parts = []
    bsd = frame.filter(~pl.col("_5424") & ~pl.col("_3339"))
    if bsd.height:
        g = line.str.extract_groups(RFC3164).struct.rename_fields(_HEADER)
        parts.append(
            bsd.select("line", "line_no", g.alias("_g"))
            .unnest("_g")
            .with_columns(
                _rfc3164_time(pl.col("_ts"), ctx).alias("@timestamp"),
                pl.lit(None, pl.String).alias("_msgid"),
            )
        )
    iso = frame.filter(pl.col("_3339"))
    if iso.height:
        g = line.str.extract_groups(RFC3339_TRADITIONAL).struct.rename_fields(_HEADER)
        parts.append(
            iso.select("line", "line_no", g.alias("_g"))
            .unnest("_g")
            .with_columns(
                _rfc3339_time(pl.col("_ts"), ctx).alias("@timestamp"),
                pl.lit(None, pl.String).alias("_msgid"),
            )
        )
    new = frame.filter(pl.col("_5424"))
    if new.height:
        names = ["_pri", "_ts", "_host", "_tag", "_pid", "_msgid", "_sd", "_msg"]
        g = line.str.extract_groups(RFC5424).struct.rename_fields(names)
        nil = [
            pl.when(pl.col(n).eq("-")).then(None).otherwise(pl.col(n)).alias(n)
            for n in ("_host", "_tag", "_pid", "_msgid")
        ]
        # the message is optional in RFC 5424: a matched line has _pri, and "" when no message
        msg = pl.when(pl.col("_pri").is_not_null()).then(
            pl.col("_msg").fill_null("").str.strip_prefix("\ufeff")
        )
        parts.append(
            new.select("line", "line_no", g.alias("_g"))
            .unnest("_g")
            .with_columns(
                *nil,
                msg.otherwise(None).alias("_msg"),
                _rfc3339_time(pl.col("_ts"), ctx).alias("@timestamp"),
            )
            .drop("_sd")
        )
    cols = ["line", "line_no", *_HEADER, "_msgid", "@timestamp"]
    out = (
        pl.concat([p.select(cols) for p in parts])
        if parts
        else lines.with_columns(
            *(pl.lit(None, pl.String).alias(c) for c in [*_HEADER, "_msgid"]),
            pl.lit(None, pl.Datetime("us", "UTC")).alias("@timestamp"),
        )
    )
    return out.sort("line_no") if len(parts) > 1 else out


def _ip_or_domain(expr: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    value = pl.when(expr.eq("")).then(None).otherwise(expr)
    is_ip = value.str.contains(_IP)
    return pl.when(is_ip).then(value).otherwise(None), pl.when(is_ip).then(None).otherwise(value)


def _semantics(frame: pl.DataFrame) -> pl.DataFrame:
    """``event.action``/``outcome``/``reason``, ``user.name`` and source of auth lines."""
    msg = pl.col("message")
    proc = pl.col("process.name")
    tag = pl.col("log.syslog.appname")
    old_pam = tag.str.contains(r"\(pam_unix\)$").fill_null(False)
    sshd = proc.eq("sshd").fill_null(False)
    su = proc.eq("su").fill_null(False)

    accepted = msg.str.extract_groups(r"^Accepted (\S+) for (.*?) from (\S+) port (\d+)")
    failed = msg.str.extract_groups(
        r"^(?:message repeated \d+ times: \[ )?Failed (\S+) for (invalid user )?(.*?) from (\S+) port (\d+)"
    )
    invalid = msg.str.extract_groups(r"^Invalid user (.*?) from (\S+?)(?: port (\d+))?$")
    reverse = msg.str.extract_groups(
        r"^reverse mapping checking getaddrinfo for (\S+) \[([^\]]+)\] failed"
    )
    maps = msg.str.extract_groups(r"^Address (\S+) maps to (\S+), but this does not map back")
    received = msg.str.extract_groups(
        r"^(?:error: )?Received disconnect from (\S+?)(?: port (\d+))?:"
    )
    closing = (
        r"(?:(?:authenticating |invalid )?user (\S+) )?(\S+?)(?: port (\d+))?(?: \[preauth\])?$"
    )
    closed = msg.str.extract_groups(rf"^Connection closed by {closing}")
    closed2 = msg.str.extract_groups(rf"^Disconnected from {closing}")
    too_many = msg.str.extract_groups(
        r"^Disconnecting(?::| (?:authenticating |invalid )?user (\S+) \S+ port \d+:) "
        r"Too many authentication failures(?: for (?:invalid user )?(\S+))?"
    )
    pam = msg.str.extract_groups(
        r"(?:^|\): )(?:PAM \d+ more )?authentication failures?;.*?\brhost=(\S*)(?:\s+user=(\S+))?"
    )
    sudo = msg.str.extract_groups(
        r"^\s*(\S+) : (?:(.*?) ; )?TTY=\S+ ; PWD=.*? ; USER=(\S+) ;.*?COMMAND="
    )
    su_to = msg.str.extract_groups(r"^\(to (\S+)\) (\S+) on ")
    su_res = msg.str.extract_groups(r"^(Successful|FAILED) su for (\S+) by (\S+)")
    su_session = msg.str.extract(r"session opened for user \S+ by (\S*?)\(uid=")

    frame = frame.with_columns(
        accepted.alias("_acc"),
        failed.alias("_fail"),
        invalid.alias("_inv"),
        reverse.alias("_rev"),
        maps.alias("_map"),
        received.alias("_recv"),
        closed.alias("_clo"),
        closed2.alias("_clo2"),
        too_many.alias("_many"),
        msg.str.contains("POSSIBLE BREAK-IN ATTEMPT").fill_null(False).alias("_breakin"),
        pam.alias("_pam"),
        sudo.alias("_sudo"),
        su_to.alias("_suto"),
        su_res.alias("_sures"),
        su_session.alias("_susess"),
        msg.str.contains(r"^Disconnecting.*Too many authentication failures")
        .fill_null(False)
        .alias("_many_hit"),
    )

    def f(name: str, i: int) -> pl.Expr:
        return pl.col(name).struct[i]

    def has(name: str) -> pl.Expr:
        return pl.col(name).struct[0].is_not_null()

    is_acc = sshd & has("_acc")
    is_fail = sshd & has("_fail")
    is_inv = sshd & has("_inv")
    is_brk = sshd & pl.col("_breakin")
    is_recv = sshd & has("_recv")
    is_clo = sshd & f("_clo", 1).is_not_null()
    is_clo2 = sshd & f("_clo2", 1).is_not_null()
    is_many = sshd & pl.col("_many_hit")
    is_pam = f("_pam", 0).is_not_null()
    is_sudo = proc.eq("sudo").fill_null(False) & f("_sudo", 0).is_not_null()
    is_suto = su & has("_suto")
    is_sures = su & has("_sures")
    is_susess = su & old_pam & pl.col("_susess").is_not_null()
    fail_method = f("_fail", 0)
    fail_reason = (
        pl.when(f("_fail", 1).is_not_null())
        .then(pl.lit("invalid_user"))
        .when(fail_method.is_in(["password", "keyboard-interactive/pam", "keyboard-interactive"]))
        .then(pl.lit("bad_password"))
        .otherwise(
            pl.concat_str(pl.lit("bad_"), fail_method.str.replace_all(r"[^A-Za-z0-9]+", "_"))
        )
    )
    sudo_complaint = f("_sudo", 1)
    sudo_reason = (
        pl.when(sudo_complaint.str.contains("NOT in sudoers"))
        .then(pl.lit("not_in_sudoers"))
        .when(sudo_complaint.str.contains("incorrect password"))
        .then(pl.lit("bad_password"))
        .when(sudo_complaint.str.contains("not allowed"))
        .then(pl.lit("command_not_allowed"))
        .otherwise(pl.lit("denied"))
    )
    pam_user = f("_pam", 1)
    pam_as_ssh = is_pam & old_pam & sshd
    pam_ip, pam_domain = _ip_or_domain(f("_pam", 0))

    action = (
        pl.when(is_acc | is_fail | is_inv | pam_as_ssh)
        .then(pl.lit("ssh_login"))
        .when(is_brk)
        .then(pl.lit("ssh_break_in_attempt"))
        .when(is_recv | is_clo | is_clo2 | is_many)
        .then(pl.lit("ssh_disconnect"))
        .when(is_sudo)
        .then(pl.lit("sudo"))
        .when(is_suto | is_sures | is_susess)
        .then(pl.lit("su"))
        .when(is_pam)
        .then(pl.lit("auth_failure"))
        .otherwise(None)
    )
    outcome = (
        pl.when(is_acc)
        .then(pl.lit("success"))
        .when(is_fail | is_inv | pam_as_ssh | is_many)
        .then(pl.lit("failure"))
        .when(is_sudo)
        .then(
            pl.when(sudo_complaint.is_null()).then(pl.lit("success")).otherwise(pl.lit("failure"))
        )
        .when(is_sures)
        .then(
            pl.when(f("_sures", 0).eq("FAILED"))
            .then(pl.lit("failure"))
            .otherwise(pl.lit("success"))
        )
        .when(is_suto | is_susess)
        .then(pl.lit("success"))
        .when(is_pam)
        .then(pl.lit("failure"))
        .otherwise(None)
    )
    reason = (
        pl.when(is_acc)
        .then(f("_acc", 0))
        .when(is_fail)
        .then(fail_reason)
        .when(is_inv)
        .then(pl.lit("invalid_user"))
        .when(pam_as_ssh)
        .then(
            pl.when(pam_user.is_null())
            .then(pl.lit("invalid_user"))
            .otherwise(pl.lit("bad_password"))
        )
        .when(is_many)
        .then(pl.lit("too_many_auth_failures"))
        .when(is_sudo & sudo_complaint.is_not_null())
        .then(sudo_reason)
        .when(is_sures & f("_sures", 0).eq("FAILED"))
        .then(pl.lit("bad_password"))
        .otherwise(None)
    )
    user = (
        pl.when(is_acc)
        .then(f("_acc", 1))
        .when(is_fail)
        .then(f("_fail", 2))
        .when(is_inv)
        .then(f("_inv", 0))
        .when(is_clo)
        .then(f("_clo", 0))
        .when(is_clo2)
        .then(f("_clo2", 0))
        .when(is_many)
        .then(pl.coalesce(f("_many", 0), f("_many", 1)))
        .when(is_sudo)
        .then(f("_sudo", 0))
        .when(is_suto)
        .then(f("_suto", 1))
        .when(is_sures)
        .then(f("_sures", 2))
        .when(is_susess)
        .then(pl.col("_susess"))
        .when(is_pam)
        .then(pam_user)
        .otherwise(None)
    )
    ip = (
        pl.when(is_acc)
        .then(f("_acc", 2))
        .when(is_fail)
        .then(f("_fail", 3))
        .when(is_inv)
        .then(f("_inv", 1))
        .when(is_brk & has("_rev"))
        .then(f("_rev", 1))
        .when(is_brk & has("_map"))
        .then(f("_map", 0))
        .when(is_recv)
        .then(f("_recv", 0))
        .when(is_clo)
        .then(f("_clo", 1))
        .when(is_clo2)
        .then(f("_clo2", 1))
        .when(is_pam)
        .then(pam_ip)
        .otherwise(None)
    )
    port = (
        pl.when(is_acc)
        .then(f("_acc", 3))
        .when(is_fail)
        .then(f("_fail", 4))
        .when(is_inv)
        .then(f("_inv", 2))
        .when(is_recv)
        .then(f("_recv", 1))
        .when(is_clo)
        .then(f("_clo", 2))
        .when(is_clo2)
        .then(f("_clo2", 2))
        .otherwise(None)
    )
    domain = (
        pl.when(is_brk & has("_rev"))
        .then(f("_rev", 0))
        .when(is_brk & has("_map"))
        .then(f("_map", 1))
        .when(is_pam)
        .then(pam_domain)
        .otherwise(None)
    )
    ip_checked = pl.when(ip.str.contains(_IP)).then(ip).otherwise(None)
    return frame.with_columns(
        action.alias("event.action"),
        outcome.alias("event.outcome"),
        reason.alias("event.reason"),
        pl.when(user.eq("")).then(None).otherwise(user).alias("user.name"),
        ip_checked.alias("source.ip"),
        port.cast(pl.Int64, strict=False).alias("source.port"),
        domain.alias("source.domain"),
    )


def parse_syslog(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    """Parse syslog lines (columns ``line``, ``line_no``) into system events."""
    empty = pl.col("line").str.strip_chars().eq("")
    blank = lines.filter(empty)
    lines = lines.filter(~empty) if blank.height else lines
    rejects = [make_rejects(blank, RejectReason.EMPTY, FORMAT, ctx.source)] if blank.height else []
    frame = _headers(lines, ctx)
    unmatched = pl.col("_msg").is_null()
    bad_ts = ~valid_time(pl.col("@timestamp")) & ~unmatched
    if frame.select((unmatched | bad_ts).any()).item():
        rejects.append(
            make_rejects(frame.filter(unmatched), RejectReason.NO_MATCH, FORMAT, ctx.source)
        )
        rejects.append(
            make_rejects(frame.filter(bad_ts), RejectReason.BAD_TIMESTAMP, FORMAT, ctx.source)
        )
        frame = frame.filter(~unmatched & ~bad_ts)
    tag = pl.col("_tag").str.strip_chars()
    proc = tag.str.replace(r"\([^)]*\)$", "").str.strip_chars()
    frame = frame.with_columns(
        pl.col("_host").alias("host.name"),
        pl.col("_host").alias("log.syslog.hostname"),
        tag.alias("log.syslog.appname"),
        pl.col("_pri").cast(pl.Int64, strict=False).alias("log.syslog.priority"),
        pl.when(proc.eq("")).then(None).otherwise(proc).alias("process.name"),
        pl.col("_pid").cast(pl.Int64, strict=False).alias("process.pid"),
        pl.col("_msg").alias("message"),
    )
    auth = (
        pl.col("process.name").is_in(["sshd", "sudo", "su"]).fill_null(False)
        | pl.col("log.syslog.appname").str.contains("pam_unix").fill_null(False)
        | pl.col("message").str.starts_with("pam_unix(").fill_null(False)
    )
    frame = frame.with_columns(auth.alias("_auth"))
    auth_rows = frame.filter(pl.col("_auth"))
    if auth_rows.height:
        rest = frame.filter(~pl.col("_auth"))
        auth_rows = _semantics(auth_rows)
        frame = pl.concat([auth_rows, rest], how="diagonal_relaxed").sort("line_no")
    batch = frame.with_columns(
        pl.when(pl.col("_auth"))
        .then(pl.lit("system.auth"))
        .otherwise(pl.lit("system.syslog"))
        .alias("event.dataset"),
        pl.lit("event").alias("event.kind"),
        pl.when(pl.col("_auth"))
        .then(pl.lit("authentication"))
        .otherwise(None)
        .alias("event.category"),
        event_id(ctx).alias("event.id"),
    )
    rejected = pl.concat(rejects).sort("line_no") if rejects else empty_rejects()
    return Parsed(conform(batch), rejected)


def sniff_syslog(sample: list[str]) -> float:
    """Share of ``sample`` lines with a syslog header."""
    if not sample:
        return 0.0
    s = pl.Series(sample, dtype=pl.String)
    hits = s.str.contains(RFC3164) | s.str.contains(RFC5424) | s.str.contains(RFC3339_TRADITIONAL)
    return float(hits.sum()) / len(sample)
