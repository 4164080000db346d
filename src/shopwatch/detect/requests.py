"""Kind ``request_model``: a learned model of each endpoint's normal requests.

No signature, no label: the model learns from the shop's own traffic what each endpoint
receives, and a request is scored by how unlike that it is. The attributes follow
Kruegel and Vigna, "Anomaly detection of web-based attacks" (CCS 2003): for each path
prefix, the segments that follow it (ids normalised: numbers are ``{n}``, long hex and
UUIDs ``{id}``, the end of the path ``$``); for each endpoint, its methods (HEAD counts
as GET, a CORS preflight as nothing) and parameter names; for each parameter, its
character classes (digit, ASCII letter, other letter, space, each other character by
itself), how many times each punctuation character occurs when it does, and its length.

Each attribute is a vocabulary with a count of observations ``N`` and ``d`` distinct
items. An item the vocabulary never held is as likely as a new item was while it was
being learned, ``p = (d + 1) / (N + 1)``: a digit-only field that held nothing else in
5,000 values makes a quote rare (p = 0.0004); a field that held every kind of character
makes nothing rare. A vocabulary that reaches ``open_after`` distinct items is *open*: it
stops keeping items and never scores novelty. A path prefix that is open (a catalogue of
product slugs) is written ``*`` in longer paths, so ``/product/*/reviews`` is one
endpoint; a prefix opens from what is in the state, or from the segments of this batch's
requests that succeeded, never from misses. A value longer than every one seen is scored
with Chebyshev's bound on its distance from the mean length, ``p = var / (len - mean)^2``,
but never below ``1 / (N + 1)``, the chance that the newest of N + 1 values is the longest.

A request's score is the sum of ``-log10 p`` over its attributes with ``p < rare``; a
request whose score reaches ``min_score`` is anomalous, and the alert says which
attribute and how, in words. A novel path segment counts only when the server said the
path did not answer (any status of 400 or more but the business answers in
:data:`ANSWERS`; or no status is logged) and it is not one clients ask for by themselves (``expected_misses``: touch
icons, robots.txt): a page that answered is new content, not an attack. Parameter names and values are percent- and ``+``-decoded
by the standard library (UTF-8, or Latin-1 when the bytes are not UTF-8), from the query
and from a form body (``k=v&...``).

Learning, without labels: each request is judged against the model as it stood just
before it (:meth:`RequestModelDetector.detect`), and only requests judged normal teach
it, so what it flagged never becomes normal. One address teaches at most
:data:`PER_CLIENT` requests per path and batch, and a request whose path did not answer
teaches nothing about paths (a scanner's 404s cannot make a prefix open). Nodes, path
segments and parameter names are kept as 64-bit BLAKE2b digests, never as text (a reset
token in a path or a query must not sit in the state); methods and character classes are
kept as they are. No value is kept.

State (keyed by ``_node``, the digest of a path prefix, an endpoint,
``endpoint?parameter`` or that and a character): ``items`` (node, attribute, item, count,
last seen), ``totals`` (node, attribute, ``N``, ``d``, open, last seen), ``lengths``
(node, count, sum, sum of squares, longest, last seen), ``fired`` (address, last alert)
for ``quiet``, ``clients`` and ``pending`` for adoption. Nodes not seen for
``forget_after`` are forgotten.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import unquote_to_bytes

import polars as pl
import structlog
from pydantic import Field, field_validator

from shopwatch.contract import ALERT_SCHEMA, TIMESTAMP, empty_alerts
from shopwatch.detect.conditions import Where
from shopwatch.detect.registry import (
    Duration,
    RuleSpec,
    WhereClause,
    alert_record,
    kind,
    parse_duration,
)
from shopwatch.detect.state import KeyedState

log = structlog.get_logger(__name__)

__all__ = ["RequestModelDetector", "RequestModelSpec", "decode_component"]

#: Path segments read (deeper ones are left out of the model).
MAX_DEPTH: Final = 12
#: Parameters read per request (the rest are counted as one more parameter name).
MAX_PARAMS: Final = 64
#: Occurrences of one character above this count as this many.
MAX_COUNT: Final = 20
#: Statuses of 400 or more that still answer from a path that exists (a 401 from a login
#: form, a 402 from a payment API, a 409 or 422 from a form): with these, 2xx and 3xx, a
#: novel segment is new content. With any other (404, 403, 405, 429, 5xx) or none, it
#: counts, and it never opens a prefix.
ANSWERS: Final = (401, 402, 409, 412, 415, 422, 423)
#: Requests one client address teaches per endpoint and batch.
PER_CLIENT: Final = 20
#: Requests judged normal that make an address an established client (its rare items
#: count towards adoption).
ESTABLISHED: Final = 3
#: Established clients remembered, and for how long.
MAX_CLIENTS: Final = 200_000
CLIENT_MEMORY: Final = timedelta(days=1)
#: Scoring passes over one batch at most (see :meth:`RequestModelDetector.detect`).
MAX_PASSES: Final = 4
#: Reasons kept per anomalous request.
MAX_REASONS: Final = 8
#: Anomalous requests named per alert, and addresses (``details.members``).
MAX_IDS: Final = 1000
MAX_MEMBERS: Final = 500

_NODE = "_node"
_F = "_f"
_ITEM = "_item"

# Attributes. Path and value items are stored as digests.
PATH, METHOD, NAME, CHAR, COUNT = "path", "method", "name", "char", "count"
_HASHED = {PATH, NAME}

_ITEMS_SCHEMA: Final[dict[str, pl.DataType]] = {
    _NODE: pl.String(),
    _F: pl.String(),
    _ITEM: pl.String(),
    "_n": pl.Int64(),
    "_ts": TIMESTAMP,
}
_TOTALS_SCHEMA: Final[dict[str, pl.DataType]] = {
    _NODE: pl.String(),
    _F: pl.String(),
    "_n": pl.Int64(),
    "_d": pl.Int64(),
    "_open": pl.Boolean(),
    "_ts": TIMESTAMP,
}
_LENGTHS_SCHEMA: Final[dict[str, pl.DataType]] = {
    _NODE: pl.String(),
    "_n": pl.Int64(),
    "_sum": pl.Float64(),
    "_sum2": pl.Float64(),
    "_max": pl.Int64(),
    "_ts": TIMESTAMP,
}
_FIRED_SCHEMA: Final[dict[str, pl.DataType]] = {"source.ip": pl.String(), "_ts": TIMESTAMP}
_CLIENTS_SCHEMA: Final[dict[str, pl.DataType]] = {
    "_ip": pl.String(),
    "_n": pl.Int64(),
    "_ts": TIMESTAMP,
}
_PENDING_SCHEMA: Final[dict[str, pl.DataType]] = {
    _NODE: pl.String(),
    _F: pl.String(),
    _ITEM: pl.String(),
    "_ip": pl.String(),
    "_ts": TIMESTAMP,
}

_FORM = r"^[^=&\s]+=[^&\s]*(&[^=&\s]*=?[^&\s]*)*$"


class RequestModelSpec(RuleSpec):
    """A ``request_model`` rule."""

    where: WhereClause
    #: A request is anomalous when its summed surprisal reaches this.
    min_score: float = Field(default=2.0, gt=0)
    #: Attributes more likely than this add nothing to the score.
    rare: float = Field(default=0.03, gt=0, lt=1)
    #: A vocabulary with this many distinct items is open (never scores novelty).
    open_after: int = Field(default=64, ge=2, le=10_000)
    #: Nodes not seen for this long are forgotten.
    forget_after: Duration = "7d"
    #: One alert per address per this much event time.
    quiet: Duration = "10m"
    #: A rare item that this many different addresses sent (a feature the shop rolled
    #: out, a link that broke) becomes normal although its requests were flagged.
    adopt_after: int = Field(default=50, ge=2, le=10_000)
    #: Paths that browsers, crawlers and apps ask for by themselves (regexes on the
    #: path): a 404 there is no probe, and it may teach the model.
    expected_misses: tuple[str, ...] = ()

    @field_validator("expected_misses")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                pl.select(pl.lit("/").str.contains(pattern))
            except pl.exceptions.ComputeError as err:
                raise ValueError(f"expected_misses: {pattern!r} is not a regex: {err}") from err
        return value


def decode_component(text: str) -> str:
    """A query or form component decoded: ``+`` is a space, ``%XX`` a byte, UTF-8 or Latin-1.

    >>> decode_component("Vino+Rioja%27%3B")
    "Vino Rioja';"
    >>> decode_component("A%F1adir")
    'Añadir'
    >>> decode_component("caf%C3%A9")
    'café'
    """
    raw = unquote_to_bytes(text.replace("+", " "))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _digested(frame: pl.DataFrame, column: str, into: str) -> pl.DataFrame:
    """``frame`` with ``into``: the digest of ``column`` (computed once per distinct value)."""
    unique = frame.select(column).unique().filter(pl.col(column).is_not_null())
    digests = unique.with_columns(
        pl.col(column).map_elements(_digest, return_dtype=pl.String).alias(into)
    )
    return frame.join(digests, on=column, how="left")


def _keyed(vocab: pl.DataFrame) -> pl.DataFrame:
    """Vocabulary rows as the state keeps them: ``_item`` the digest of a hashed
    attribute's item (the item itself otherwise), ``_node`` the digest of the node, whose
    text stays in ``_where`` for messages (a token in a path or a query is a secret)."""
    hashed = pl.col(_F).is_in(list(_HASHED))
    vocab = _digested(vocab.with_columns(pl.when(hashed).then("_shown").alias("_h")), "_h", _ITEM)
    vocab = vocab.with_columns(
        pl.when(hashed).then(pl.col(_ITEM)).otherwise(pl.col("_shown")).alias(_ITEM)
    ).drop("_h")
    return _digested(vocab.rename({_NODE: "_where"}), "_where", _NODE)


def _decoded(col: pl.Expr) -> pl.Expr:
    """Percent/plus decoding of a String column, on the values that need it only."""
    needs = col.str.contains(r"[%+]", literal=False)
    return (
        pl.when(needs)
        .then(col.map_elements(decode_component, return_dtype=pl.String, skip_nulls=True))
        .otherwise(col)
    )


def _classes(col: pl.Expr) -> pl.Expr:
    """Each character replaced by its class: ``d`` digit, ``a`` ASCII letter, ``A`` other
    letter; every other character stands for itself."""
    return (
        col.str.replace_all(r"[a-zA-Z]", "a")
        .str.replace_all(r"[0-9]", "d")
        .str.replace_all(r"[\p{L}&&[^\x00-\x7F]]", "A")
    )


@kind("request_model")
class RequestModelDetector:
    """Requests scored against a model of each endpoint's normal requests."""

    Spec = RequestModelSpec
    single_event = False  # it needs the model learnt from many requests
    #: Alerts depend on what earlier requests taught, so on how the input was cut into
    #: batches (a little: see :meth:`detect`).
    learns = True

    def __init__(self, spec: RequestModelSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.category = spec.category
        self.keys = (_NODE,)
        self.horizon = parse_duration(spec.forget_after)
        self.quiet = parse_duration(spec.quiet)
        self.where = Where(spec.where)
        self.derived = self.where.derived
        self.needs = frozenset(
            {
                "@timestamp",
                "event.id",
                "source.ip",
                "http.request.method",
                "url.path",
                "url.query",
                "http.request.body.content",
                "http.response.status_code",
                *self.where.fields,
            }
        )

    # -- features ---------------------------------------------------------------------

    def _requests(self, batch: pl.DataFrame) -> pl.DataFrame:
        where = self.where.for_batch(batch.columns)
        if where is None or "url.path" not in batch.columns:
            return pl.DataFrame()

        def col(name: str, dtype: pl.DataType) -> pl.Expr:
            return (pl.col(name) if name in batch.columns else pl.lit(None)).cast(dtype)

        return (
            batch.lazy()
            .filter(where & pl.col("url.path").is_not_null())
            .select(
                pl.col("@timestamp").alias("_ts"),
                col("event.id", pl.String()).alias("_id"),
                col("source.ip", pl.String()).alias("_ip"),
                # HEAD is GET without the body (RFC 9110); a CORS preflight is no evidence.
                col("http.request.method", pl.String())
                .str.to_uppercase()
                .replace({"HEAD": "GET", "OPTIONS": None})
                .alias("_method"),
                col("url.path", pl.String()).alias("_path"),
                col("url.query", pl.String()).alias("_query"),
                col("http.request.body.content", pl.String()).alias("_body"),
                col("http.response.status_code", pl.Int64()).alias("_status"),
            )
            .sort("_ts", maintain_order=True)
            .with_row_index("_r")
            .with_columns(
                (
                    pl.col("_status").is_not_null()
                    & ((pl.col("_status") < 400) | pl.col("_status").is_in(ANSWERS))
                ).alias("_answered"),
                self._expected(pl.col("_path")).alias("_expected"),
            )
            .collect()
        )

    def _expected(self, path: pl.Expr) -> pl.Expr:
        patterns = self.spec.expected_misses
        if not patterns:
            return pl.lit(False)
        return path.str.contains("^(?:" + "|".join(f"(?:{p})" for p in patterns) + ")$")

    def _endpoints(
        self, requests: pl.DataFrame, totals: pl.DataFrame
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Path features (``_r``, node, item, shown) and each request's endpoint (``_r``, ``_ep``).

        Depth by depth: a segment under an open prefix is written ``*``.
        """
        known = totals.filter(pl.col(_F) == PATH).select(_NODE, "_d", "_open")
        segs = requests.select(
            "_r",
            pl.when(pl.col("_path") == "/")
            .then(pl.lit(""))
            .otherwise(pl.col("_path").str.strip_prefix("/"))
            .str.split("/")
            .list.head(MAX_DEPTH)
            .list.eval(
                pl.when(pl.element().str.contains(r"^[0-9]+$"))
                .then(pl.lit("{n}"))
                .when(
                    pl.element().str.contains(
                        r"(?i)^(?:[0-9a-f]{16,}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
                        r"[0-9a-f]{4}-[0-9a-f]{12})$"
                    )
                )
                .then(pl.lit("{id}"))
                .otherwise(pl.element())
            )
            .alias("_segs"),
        ).with_columns(  # "/" has no segment; "/a/" has "a" and an empty one
            pl.when(pl.col("_segs").list.len() == 1, pl.col("_segs").list.first() == "")
            .then(pl.lit([], pl.List(pl.String)))
            .otherwise(pl.col("_segs"))
            .alias("_segs")
        )
        depth = int(segs.select(pl.col("_segs").list.len().max().fill_null(0)).item())
        ok = requests.select("_r", pl.col("_answered").alias("_ok"))
        prefix = segs.join(ok, on="_r").select("_r", pl.lit("").alias(_NODE), "_segs", "_ok")
        parts: list[pl.DataFrame] = []
        for i in range(depth + 1):
            step = prefix.with_columns(
                pl.col("_segs").list.get(i, null_on_oob=True).fill_null("$").alias("_shown")
            )
            # Open: in the state, or with as many different segments in the state and in
            # this batch's requests that succeeded (a scanner's 404s cannot open a prefix).
            batch_wide = step.group_by(_NODE).agg(
                pl.col("_shown").filter(pl.col("_ok")).n_unique().alias("_batch_d")
            )
            wide = (
                _digested(batch_wide, _NODE, "_key")
                .join(known, left_on="_key", right_on=_NODE, how="left")
                .select(
                    _NODE,
                    (
                        pl.col("_open").fill_null(False)
                        | (pl.col("_d").fill_null(0) + pl.col("_batch_d") >= self.spec.open_after)
                    ).alias("_under_open"),
                )
            )
            step = step.join(wide, on=_NODE, how="left")
            parts.append(step.select("_r", _NODE, "_shown"))
            prefix = (
                step.filter(pl.col("_segs").list.len() > i)
                .with_columns(
                    (
                        pl.col(_NODE)
                        + "/"
                        + pl.when(pl.col("_under_open"))
                        .then(pl.lit("*"))
                        .otherwise(pl.col("_shown"))
                    ).alias(_NODE)
                )
                .select("_r", _NODE, "_segs", "_ok")
            )
        paths = pl.concat(parts).with_columns(pl.lit(PATH).alias(_F))
        # Parameters are modelled per endpoint, whatever the spelling of its path:
        # "/a//b/", "/a/b;jsessionid=1" and "/a/b" are one (the path itself is still
        # judged as sent).
        endpoints = paths.filter(pl.col("_shown") == "$").select(
            "_r",
            pl.col(_NODE)
            .str.replace_all(r";[^/]*", "")
            .str.replace_all(r"/{2,}", "/")
            .str.strip_suffix("/")
            .replace("", "/")
            .alias("_ep"),
        )
        return paths, endpoints

    def _params(self, requests: pl.DataFrame, endpoints: pl.DataFrame) -> pl.DataFrame:
        """One row per parameter: ``_r``, ``_ep``, ``_k`` (position), name and decoded value."""
        body = pl.when(pl.col("_body").str.contains(_FORM)).then(pl.col("_body"))
        pieces = (
            requests.select("_r", pl.concat_list(pl.col("_query"), body).alias("_src"))
            .explode("_src")
            .filter(pl.col("_src").is_not_null() & (pl.col("_src") != ""))
            .with_columns(pl.col("_src").str.split("&"))
            .explode("_src")
            .filter(pl.col("_src") != "")
            .with_columns(pl.int_range(pl.len()).over("_r").alias("_k"))
            .filter(pl.col("_k") <= MAX_PARAMS)
            .with_columns(
                # Past the limit, one more name stands for all the rest.
                pl.when(pl.col("_k") == MAX_PARAMS)
                .then(pl.lit(f"(more than {MAX_PARAMS} parameters)="))
                .otherwise(pl.col("_src"))
                .alias("_src")
            )
            .with_columns(
                pl.col("_src").str.extract(r"^([^=]*)", 1).alias("_name"),
                pl.col("_src").str.extract(r"^[^=]*=(.*)$", 1).fill_null("").alias("_value"),
            )
        )
        return (
            pieces.with_columns(_decoded(pl.col("_name")), _decoded(pl.col("_value")))
            .join(endpoints, on="_r", how="inner")
            .select("_r", "_ep", "_k", "_name", "_value")
        )

    def _features(
        self, requests: pl.DataFrame, totals: pl.DataFrame
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Vocabulary features (``_r``, ``_obs``, node, attribute, shown item, counted) and
        length features (``_r``, node, name, length)."""
        paths, endpoints = self._endpoints(requests, totals)
        # A novel segment of a request that succeeded is new content, not evidence; nor
        # is a miss on a path clients ask for by themselves.
        ok = requests.select("_r", (pl.col("_answered") | pl.col("_expected")).alias("_ok"))
        paths = paths.join(ok, on="_r").with_columns(
            pl.concat_str(pl.col("_r"), pl.lit("p"), _NODE).alias("_obs"),
            pl.lit(None, pl.String).alias("_param"),
        )
        methods = (
            requests.select("_r", "_method")
            .join(endpoints, on="_r")
            .filter(pl.col("_method").is_not_null())
            .select(
                "_r",
                pl.col("_ep").alias(_NODE),
                pl.col("_method").alias("_shown"),
                pl.lit(METHOD).alias(_F),
                pl.lit(False).alias("_ok"),
                pl.concat_str(pl.col("_r"), pl.lit("m")).alias("_obs"),
                pl.lit(None, pl.String).alias("_param"),
            )
        )
        params = self._params(requests, endpoints)
        names = params.select(
            "_r",
            pl.col("_ep").alias(_NODE),
            pl.col("_name").alias("_shown"),
            pl.lit(NAME).alias(_F),
            pl.lit(False).alias("_ok"),
            pl.concat_str(pl.col("_r"), pl.lit("n"), pl.col("_k")).alias("_obs"),
            pl.col("_name").alias("_param"),
        )
        node = pl.concat_str(pl.col("_ep"), pl.lit("?"), pl.col("_name")).alias(_NODE)
        obs = pl.concat_str(pl.col("_r"), pl.lit("v"), pl.col("_k")).alias("_obs")
        chars = (
            params.select(
                "_r",
                node,
                obs,
                pl.col("_name").alias("_param"),
                _classes(pl.col("_value")).str.split("").alias("_c"),
            )
            .explode("_c")
            .filter(pl.col("_c").is_not_null() & (pl.col("_c") != ""))
            .group_by("_r", _NODE, "_obs", "_param", "_c")
            .len("_times")
        )
        char_items = chars.select(
            "_r",
            _NODE,
            pl.col("_c").alias("_shown"),
            pl.lit(CHAR).alias(_F),
            pl.lit(False).alias("_ok"),
            "_obs",
            "_param",
        )
        # How many times a punctuation character occurs, given that it does: one
        # vocabulary per parameter and character ("@" once in an e-mail address).
        count_items = chars.filter(~pl.col("_c").is_in(["d", "a", "A", " "])).select(
            "_r",
            pl.concat_str(_NODE, pl.lit(" "), pl.col("_c")).alias(_NODE),
            pl.col("_times").clip(upper_bound=MAX_COUNT).cast(pl.String).alias("_shown"),
            pl.lit(COUNT).alias(_F),
            pl.lit(False).alias("_ok"),
            "_obs",
            "_param",
        )
        columns = ["_r", _NODE, "_shown", _F, "_ok", "_obs", "_param"]
        vocab = pl.concat(
            [frame.select(columns) for frame in (paths, methods, names, char_items, count_items)]
        )
        vocab = _keyed(vocab)
        lengths = params.select(
            "_r",
            node,
            pl.col("_name").alias("_param"),
            pl.col("_value").str.len_chars().cast(pl.Int64).alias("_len"),
        )
        return vocab, _digested(lengths.rename({_NODE: "_where"}), "_where", _NODE)

    # -- scoring ------------------------------------------------------------------------

    def model_summary(self, state: KeyedState) -> dict[str, Any]:
        """The endpoints this model has learned (``shopwatch models``)."""
        totals = state.table("totals", _TOTALS_SCHEMA)
        items = state.table("items", _ITEMS_SCHEMA)
        return {
            "kind_version": 1,
            "learns_from": "requests the shop answered, per endpoint (path template)",
            "entities": totals.get_column(_NODE).n_unique() if totals.height else 0,
            "entity": "endpoint",
            "events": None,
            "first": None,
            "last": totals.get_column("_ts").max() if totals.height else None,
            "items": items.height,
        }

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """Alerts for this batch's anomalous requests; then learn from the others.

        Each request is scored against the model as it stood just before it, as if the
        requests came one at a time: the state, plus the batch's earlier requests that
        teach. A request teaches when it is not anomalous against the state alone, so
        that however the input is cut into batches an attack repeated within one does
        not teach the model its own look.
        """
        if batch.height == 0:
            return empty_alerts()
        requests = self._requests(batch)
        if requests.height == 0:
            return empty_alerts()
        # A GET that answered and carries no parameter cannot be anomalous here (its path
        # answered, its method is GET): it only teaches, in bulk, first.
        plain = (
            (pl.col("_query").is_null() | (pl.col("_query") == ""))
            & ~pl.col("_body").fill_null("").str.contains(_FORM)
            & pl.col("_answered")
            & (pl.col("_method") == "GET")
        )
        self._learn_plain(state, requests.filter(plain))
        requests = requests.filter(~plain)
        if requests.height == 0:
            return empty_alerts()
        # Identical requests (a scraper's thousand calls to one API URL) are judged once,
        # at the first of them, and teach with their count.
        reqs, shapes = self._shapes(requests)
        requests = shapes
        items = state.table("items", _ITEMS_SCHEMA)
        totals = state.table("totals", _TOTALS_SCHEMA)
        lengths_state = state.table("lengths", _LENGTHS_SCHEMA)
        vocab, lengths = self._features(requests, totals)
        vocab = (
            vocab.join(
                totals.select(
                    _NODE, _F, pl.col("_n").alias("_n0"), pl.col("_d").alias("_d0"), "_open"
                ),
                on=[_NODE, _F],
                how="left",
            )
            .join(
                items.select(_NODE, _F, _ITEM, pl.lit(True).alias("_known0")),
                on=[_NODE, _F, _ITEM],
                how="left",
            )
            .with_columns(
                pl.col("_n0").fill_null(0),
                pl.col("_d0").fill_null(0),
                pl.col("_open").fill_null(False),
                pl.col("_known0").fill_null(False),
            )
            .sort("_r")
        )
        lengths = lengths.join(
            lengths_state.drop("_ts").rename(lambda c: c if c == _NODE else c + "0"),
            on=_NODE,
            how="left",
        ).sort("_r")
        # First against the state alone. Then with the batch's earlier requests that were
        # not flagged, except for the items that made a flagged request rare ("tainted":
        # nobody teaches them in this batch), until the flagged requests stay the same.
        tainted = vocab.select(_NODE, _F, _ITEM).clear()
        teachers = requests.filter(pl.col("_w") > 0).select("_r", "_w")
        evidence = self._evidence(vocab, lengths, teachers.clear(), tainted)
        flagged = self._flagged(evidence)
        for _ in range(MAX_PASSES):
            tainted = self._tainted(evidence, flagged, tainted)
            teaching = teachers.join(flagged, on="_r", how="anti")
            evidence = self._evidence(vocab, lengths, teaching, tainted)
            before, flagged = flagged, self._flagged(evidence)
            if before.select("_r").sort("_r").equals(flagged.select("_r").sort("_r")):
                break
        # What enough established clients sent is the shop's own (a new feature): it is
        # known from now on, and this batch is judged again with it.
        adopted = self._adopt(state, reqs, evidence, flagged)
        if adopted.height:
            vocab = (
                vocab.join(
                    adopted.with_columns(pl.lit(True).alias("_adopted")),
                    on=[_NODE, _F, _ITEM],
                    how="left",
                )
                .with_columns(
                    (pl.col("_known0") | pl.col("_adopted").fill_null(False)).alias("_known0")
                )
                .drop("_adopted")
            )
            tainted = tainted.join(adopted, on=[_NODE, _F, _ITEM], how="anti")
            teaching = teachers.join(flagged, on="_r", how="anti")
            evidence = self._evidence(vocab, lengths, teaching, tainted)
            flagged = self._flagged(evidence)
        tainted = self._tainted(evidence, flagged, tainted)
        self._learn(
            state,
            shapes,
            reqs,
            vocab.join(tainted, on=[_NODE, _F, _ITEM], how="anti"),
            lengths,
            flagged,
        )
        if flagged.height == 0:
            return empty_alerts()
        return self._alerts(state, reqs, evidence, flagged)

    @staticmethod
    def _shapes(requests: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The requests with ``_r`` their shape (and ``_req`` their own index), and one row
        per shape: ``_r`` in order of first appearance, the first request's time, address
        and id, and ``_w``, the requests it stands for (at most PER_CLIENT per address)."""
        key = ["_method", "_path", "_query", "_body", "_answered", "_expected", "_failed"]
        tagged = requests.with_columns(
            pl.when(pl.col("_body").str.contains(_FORM)).then(pl.col("_body")).alias("_body"),
            (pl.col("_status").is_not_null() & ~pl.col("_answered") & ~pl.col("_expected"))
            .fill_null(False)
            .alias("_failed"),
        )
        first = (
            tagged.group_by(key, maintain_order=True)
            .agg(
                pl.col("_r").min().alias("_first"),
                pl.col("_ts").first(),
                pl.col("_id").first(),
                pl.col("_ip").first(),
                pl.col("_status").first(),
            )
            .sort("_first")
            .with_row_index("_u")
        )
        reqs = tagged.join(first.select(*key, "_u"), on=key, how="left", nulls_equal=True)
        # One address teaches at most PER_CLIENT requests per path and batch, whatever
        # their shapes; a shape that only such requests sent teaches nothing (weight 0).
        weights = (
            reqs.sort("_r")
            .with_columns(
                (pl.int_range(pl.len()).over("_ip", "_path") < PER_CLIENT).alias("_teach")
            )
            .group_by("_u")
            .agg(pl.col("_teach").sum().cast(pl.Int64).alias("_w"))
        )
        shapes = first.join(weights, on="_u").sort("_u").drop("_first").rename({"_u": "_r"})
        reqs = reqs.rename({"_r": "_req"}).rename({"_u": "_r"}).sort("_req")
        return reqs, shapes

    @staticmethod
    def _clients(state: KeyedState, normal: pl.DataFrame) -> None:
        """Count each address's requests judged normal (state ``clients``, a day's worth)."""
        seen = (
            normal.filter(pl.col("_ip").is_not_null())
            .group_by("_ip")
            .agg(pl.len().cast(pl.Int64).alias("_n"), pl.col("_ts").max())
        )
        merged = (
            pl.concat([state.table("clients", _CLIENTS_SCHEMA), seen.select(list(_CLIENTS_SCHEMA))])
            .group_by("_ip")
            .agg(pl.col("_n").sum().clip(upper_bound=1_000_000), pl.col("_ts").max())
        )
        newest = merged["_ts"].max()
        if isinstance(newest, datetime):
            merged = merged.filter(pl.col("_ts") >= newest - CLIENT_MEMORY)
        if merged.height > MAX_CLIENTS:
            merged = merged.sort("_ts", "_ip", descending=True).head(MAX_CLIENTS)
        state.put("clients", merged)

    def _adopt(
        self,
        state: KeyedState,
        requests: pl.DataFrame,
        evidence: pl.DataFrame,
        flagged: pl.DataFrame,
    ) -> pl.DataFrame:
        """Count the established clients that sent each rare item; adopt the items that
        ``adopt_after`` of them sent.

        A client is established once :data:`ESTABLISHED` of its requests were judged
        normal: customers who use a new feature browsed the shop first; a request from an
        address that sent nothing else (a scanner, a one-shot probe) never counts. State
        ``pending``: per item, up to ``adopt_after`` such addresses. Returns the items
        adopted (node, attribute, item).
        """
        need = self.spec.adopt_after
        none = pl.DataFrame(schema={_NODE: pl.String(), _F: pl.String(), _ITEM: pl.String()})
        if flagged.height == 0:
            return none
        normal = (
            requests.join(flagged.select("_r"), on="_r", how="anti")
            .group_by("_ip")
            .agg(pl.len().cast(pl.Int64).alias("_n"))
        )
        established = (
            pl.concat([state.table("clients", _CLIENTS_SCHEMA).select("_ip", "_n"), normal])
            .group_by("_ip")
            .agg(pl.col("_n").sum())
            .filter(pl.col("_n") >= ESTABLISHED)
        )
        rare = (
            evidence.join(flagged.select("_r"), on="_r", how="semi")
            .filter(pl.col(_ITEM).is_not_null())
            .join(requests.select("_r", "_ip", "_ts"), on="_r")
            .join(established.select("_ip"), on="_ip", how="semi")
            .select(list(_PENDING_SCHEMA))
        )
        if rare.height == 0:
            return none
        pending = (
            pl.concat([state.table("pending", _PENDING_SCHEMA), rare])
            .group_by(_NODE, _F, _ITEM, "_ip")
            .agg(pl.col("_ts").max())
            .sort(_NODE, _F, _ITEM, "_ts", "_ip")
            .filter(pl.int_range(pl.len()).over(_NODE, _F, _ITEM) < need)
        )
        senders = pending.group_by(_NODE, _F, _ITEM).agg(
            pl.len().cast(pl.Int64).alias("_n"), pl.col("_ts").max()
        )
        adopted = senders.filter(pl.col("_n") >= need)
        state.put("pending", pending.join(adopted, on=[_NODE, _F, _ITEM], how="anti"))
        if adopted.height == 0:
            return none
        log.info(
            "request_model_adopted",
            rule=self.id,
            items=adopted.height,
            nodes=adopted[_NODE].n_unique(),
        )
        items = state.table("items", _ITEMS_SCHEMA)
        state.put(
            "items",
            pl.concat([items, adopted.select(list(_ITEMS_SCHEMA))])
            .group_by(_NODE, _F, _ITEM)
            .agg(pl.col("_n").sum(), pl.col("_ts").max()),
        )
        grown = adopted.group_by(_NODE, _F).agg(
            pl.col("_n").sum().alias("_add_n"), pl.len().cast(pl.Int64).alias("_add_d")
        )
        totals = state.table("totals", _TOTALS_SCHEMA)
        state.put(
            "totals",
            totals.join(grown, on=[_NODE, _F], how="left").select(
                _NODE,
                _F,
                pl.col("_n") + pl.col("_add_n").fill_null(0),
                pl.col("_d") + pl.col("_add_d").fill_null(0),
                pl.col("_open")
                | (pl.col("_d") + pl.col("_add_d").fill_null(0) >= self.spec.open_after),
                "_ts",
            ),
        )
        return adopted.select(_NODE, _F, _ITEM)

    def _flagged(self, evidence: pl.DataFrame) -> pl.DataFrame:
        """``_r`` and ``_score`` of the requests whose evidence reaches ``min_score``."""
        return (
            evidence.group_by("_r")
            .agg(pl.col("_s").sum().alias("_score"))
            .filter(pl.col("_score") >= self.spec.min_score)
        )

    @staticmethod
    def _tainted(
        evidence: pl.DataFrame, flagged: pl.DataFrame, tainted: pl.DataFrame
    ) -> pl.DataFrame:
        """``tainted`` and the rare items of the flagged requests."""
        rare = evidence.join(flagged, on="_r", how="semi").filter(pl.col(_ITEM).is_not_null())
        return pl.concat([tainted, rare.select(_NODE, _F, _ITEM)]).unique()

    def _evidence(
        self,
        vocab: pl.DataFrame,
        lengths: pl.DataFrame,
        teaching: pl.DataFrame,
        tainted: pl.DataFrame,
    ) -> pl.DataFrame:
        """The rare attributes of each request (``_r``, ``_p``, ``_s``, ...), each judged
        against the state and the earlier requests of ``teaching``."""
        spec = self.spec
        by = [_NODE, _F]
        # Within the batch a shape counts once (its repeats may all come later); the
        # state learns it with its weight at the end of the batch.
        taught = vocab.join(teaching, on="_r", how="semi").with_columns(pl.lit(1).alias("_w"))
        # Observations of each vocabulary before each request, and new items.
        seen = (
            taught.unique([*by, "_obs"])
            .group_by(*by, "_r")
            .agg(pl.col("_w").sum().alias("_k"))
            .sort("_r")
            .with_columns(pl.col("_k").cum_sum().over(by).alias("_cum_n"))
            .drop("_k")
        )
        # A tainted item is still taught by a request that answered with it (a page that
        # exists), never by the others.
        firsts = (
            taught.filter(~pl.col("_known0"))
            .join(tainted.with_columns(pl.lit(True).alias("_bad")), on=[*by, _ITEM], how="left")
            .filter(pl.col("_ok") | pl.col("_bad").is_null())
            .group_by(*by, _ITEM)
            .agg(pl.col("_r").min().alias("_rf"))
        )
        grown = (
            firsts.group_by(*by, "_rf")
            .agg(pl.len().alias("_k"))
            .rename({"_rf": "_r"})
            .sort("_r")
            .with_columns(pl.col("_k").cum_sum().over(by).alias("_cum_d"))
            .drop("_k")
        )
        # Both sides are sorted by request (``_r``), so within each group too.
        asof = {
            "on": "_r",
            "by": by,
            "strategy": "backward",
            "allow_exact_matches": False,
            "check_sortedness": False,
        }
        scored = (
            vocab.join_asof(seen, **asof)  # type: ignore[arg-type]
            .join_asof(grown, **asof)  # type: ignore[arg-type]
            .join(firsts, on=[*by, _ITEM], how="left")
            .with_columns(
                (pl.col("_n0") + pl.col("_cum_n").fill_null(0)).alias("_n"),
                (pl.col("_d0") + pl.col("_cum_d").fill_null(0)).alias("_d"),
            )
            .filter(
                ~pl.col("_known0")
                & ~(pl.col("_rf") < pl.col("_r")).fill_null(False)
                & ~pl.col("_open")
                & (pl.col("_d") < spec.open_after)
                & (pl.col("_n") > 0)
                & ~pl.col("_ok")
            )
            .with_columns(((pl.col("_d") + 1) / (pl.col("_n") + 1)).alias("_p"))
        )
        before = (
            lengths.join(teaching, on="_r", how="semi")
            .with_columns(pl.lit(1).alias("_w"))
            .group_by(_NODE, "_r")
            .agg(
                pl.col("_w").sum().cast(pl.Int64).alias("_k"),
                (pl.col("_w") * pl.col("_len")).sum().cast(pl.Float64).alias("_ks"),
                (pl.col("_w") * pl.col("_len").cast(pl.Float64) ** 2).sum().alias("_ks2"),
                pl.col("_len").max().alias("_kmax"),
            )
            .sort("_r")
            .with_columns(
                pl.col("_k").cum_sum().over(_NODE),
                pl.col("_ks").cum_sum().over(_NODE),
                pl.col("_ks2").cum_sum().over(_NODE),
                pl.col("_kmax").cum_max().over(_NODE),
            )
        )
        long = (
            lengths.join_asof(
                before,
                on="_r",
                by=_NODE,
                strategy="backward",
                allow_exact_matches=False,
                check_sortedness=False,
            )
            .with_columns(
                (pl.col("_n0").fill_null(0) + pl.col("_k").fill_null(0)).alias("_n"),
                (pl.col("_sum0").fill_null(0) + pl.col("_ks").fill_null(0)).alias("_sum"),
                (pl.col("_sum20").fill_null(0) + pl.col("_ks2").fill_null(0)).alias("_sum2"),
                pl.max_horizontal("_max0", "_kmax").alias("_max"),
            )
            .filter((pl.col("_n") > 0) & (pl.col("_len") > pl.col("_max")))
            .with_columns(
                (pl.col("_sum") / pl.col("_n")).alias("_mean"),
                (pl.col("_sum2") / pl.col("_n") - (pl.col("_sum") / pl.col("_n")) ** 2)
                .clip(lower_bound=1.0)
                .alias("_var"),
            )
            .with_columns(
                # Never rarer than a new longest value is among N + 1 (so a few values
                # cannot make one long value look impossible).
                pl.max_horizontal(
                    pl.col("_var") / (pl.col("_len") - pl.col("_mean")) ** 2,
                    1.0 / (pl.col("_n") + 1),
                )
                .clip(upper_bound=1.0)
                .alias("_p")
            )
        )
        return (
            pl.concat(
                [
                    scored.select(
                        "_r",
                        _F,
                        _NODE,
                        "_where",
                        "_param",
                        "_shown",
                        _ITEM,
                        "_n",
                        "_d",
                        "_p",
                        pl.lit(None, pl.Int64).alias("_len"),
                        pl.lit(None, pl.Float64).alias("_mean"),
                        pl.lit(None, pl.Int64).alias("_max"),
                    ),
                    long.select(
                        "_r",
                        pl.lit("length").alias(_F),
                        _NODE,
                        "_where",
                        "_param",
                        pl.lit(None, pl.String).alias("_shown"),
                        pl.lit(None, pl.String).alias(_ITEM),
                        "_n",
                        pl.lit(None, pl.Int64).alias("_d"),
                        "_p",
                        "_len",
                        "_mean",
                        "_max",
                    ),
                ]
            )
            .filter(pl.col("_p") < spec.rare)
            .with_columns((-pl.col("_p").log10()).alias("_s"))
        )

    def _learn(
        self,
        state: KeyedState,
        shapes: pl.DataFrame,
        reqs: pl.DataFrame,
        vocab: pl.DataFrame,
        lengths: pl.DataFrame,
        flagged: pl.DataFrame,
    ) -> None:
        """Add the unflagged requests to the model (each shape with its weight)."""
        keep = (
            shapes.filter(pl.col("_w") > 0)
            .select("_r", "_ts", "_w", "_failed")
            .join(flagged.select("_r"), on="_r", how="anti")
        )
        if keep.height == 0:
            return
        self._clients(
            state, reqs.join(flagged.select("_r"), on="_r", how="anti").select("_ts", "_ip")
        )
        # A path that failed (404, 403, ...) teaches nothing about the site's structure:
        # a scanner's misses cannot make a prefix open.
        seen = vocab.join(keep, on="_r", how="inner").filter(
            (pl.col(_F) != PATH) | ~pl.col("_failed")
        )
        self._merge(state, seen)
        self._merge_lengths(state, lengths.join(keep.select("_r", "_ts", "_w"), on="_r"))

    def _merge(self, state: KeyedState, seen: pl.DataFrame) -> None:
        """Add observations (node, attribute, item, ``_obs``, ``_ts``, weight ``_w``: how
        many requests the row stands for) to ``items`` and ``totals``."""
        spec = self.spec
        totals = state.table("totals", _TOTALS_SCHEMA)
        items = state.table("items", _ITEMS_SCHEMA)
        new_items = seen.group_by(_NODE, _F, _ITEM).agg(
            pl.col("_w").sum().cast(pl.Int64).alias("_n"), pl.col("_ts").max()
        )
        observed = (
            seen.unique([_NODE, _F, "_obs"])
            .group_by(_NODE, _F)
            .agg(pl.col("_w").sum().cast(pl.Int64).alias("_add"), pl.col("_ts").max())
        )
        merged_items = (
            pl.concat([items, new_items.select(list(_ITEMS_SCHEMA))])
            .group_by(_NODE, _F, _ITEM)
            .agg(pl.col("_n").sum(), pl.col("_ts").max())
        )
        distinct = merged_items.group_by(_NODE, _F).agg(pl.len().cast(pl.Int64).alias("_d_now"))
        merged_totals = (
            totals.join(observed, on=[_NODE, _F], how="full", coalesce=True)
            .join(distinct, on=[_NODE, _F], how="left")
            .select(
                _NODE,
                _F,
                (pl.col("_n").fill_null(0) + pl.col("_add").fill_null(0)).alias("_n"),
                pl.max_horizontal(pl.col("_d").fill_null(0), pl.col("_d_now").fill_null(0)).alias(
                    "_d"
                ),
                pl.col("_open").fill_null(False),
                pl.max_horizontal("_ts", "_ts_right").alias("_ts"),
            )
            .with_columns((pl.col("_open") | (pl.col("_d") >= spec.open_after)).alias("_open"))
        )
        open_now = merged_totals.filter(pl.col("_open")).select(_NODE, _F)
        merged_items = merged_items.join(open_now, on=[_NODE, _F], how="anti")
        state.put("items", merged_items.select(list(_ITEMS_SCHEMA)))
        state.put("totals", merged_totals.select(list(_TOTALS_SCHEMA)))

    def _learn_plain(self, state: KeyedState, plain: pl.DataFrame) -> None:
        """Teach paths and methods from plain GETs that answered, one row per path."""
        if plain.height == 0:
            return
        self._clients(state, plain.select("_r", "_ts", "_ip"))
        capped = (
            plain.sort("_r")
            .filter(pl.int_range(pl.len()).over("_ip", "_path") < PER_CLIENT)
            .group_by("_path")
            .agg(
                pl.len().cast(pl.Int64).alias("_w"),
                pl.col("_ts").max(),
                pl.col("_method").drop_nulls().first(),
            )
            .sort("_path")
            .with_row_index("_r")
            .with_columns(
                pl.lit(True).alias("_answered"),
                pl.lit(True).alias("_expected"),
                pl.lit(200, pl.Int64).alias("_status"),
            )
        )
        totals = state.table("totals", _TOTALS_SCHEMA)
        paths, endpoints = self._endpoints(capped, totals)
        weights = capped.select("_r", "_w", "_ts")
        paths = paths.with_columns(
            pl.lit(PATH).alias(_F), pl.concat_str(pl.col("_r"), pl.lit("p"), _NODE).alias("_obs")
        )
        methods = (
            capped.filter(pl.col("_method").is_not_null())
            .select("_r", "_method")
            .join(endpoints, on="_r")
            .select(
                "_r",
                pl.col("_ep").alias(_NODE),
                pl.col("_method").alias("_shown"),
                pl.lit(METHOD).alias(_F),
                pl.concat_str(pl.col("_r"), pl.lit("m")).alias("_obs"),
            )
        )
        seen = pl.concat([paths.select(methods.columns), methods]).join(weights, on="_r")
        self._merge(state, _keyed(seen))

    @staticmethod
    def _merge_lengths(state: KeyedState, lengths: pl.DataFrame) -> None:
        lengths_state = state.table("lengths", _LENGTHS_SCHEMA)
        new_lengths = lengths.group_by(_NODE).agg(
            pl.col("_w").sum().cast(pl.Int64).alias("_n"),
            (pl.col("_w") * pl.col("_len")).sum().cast(pl.Float64).alias("_sum"),
            (pl.col("_w") * pl.col("_len").cast(pl.Float64) ** 2).sum().alias("_sum2"),
            pl.col("_len").max().cast(pl.Int64).alias("_max"),
            pl.col("_ts").max(),
        )
        state.put(
            "lengths",
            pl.concat([lengths_state, new_lengths.select(list(_LENGTHS_SCHEMA))])
            .group_by(_NODE)
            .agg(
                pl.col("_n").sum(),
                pl.col("_sum").sum(),
                pl.col("_sum2").sum(),
                pl.col("_max").max(),
                pl.col("_ts").max(),
            ),
        )

    # -- alerts -------------------------------------------------------------------------

    def _alerts(
        self,
        state: KeyedState,
        requests: pl.DataFrame,
        evidence: pl.DataFrame,
        flagged: pl.DataFrame,
    ) -> pl.DataFrame:
        spec = self.spec
        fired = state.table("fired", _FIRED_SCHEMA)
        hits = requests.join(flagged, on="_r", how="inner").sort("_ts", "_req")
        why = (
            evidence.join(flagged.select("_r"), on="_r", how="semi")
            .sort(
                ["_r", "_s", _F, "_where", "_shown"],
                descending=[False, True, False, False, False],
                nulls_last=True,
            )
            .filter(pl.int_range(pl.len()).over("_r") < MAX_REASONS)
        )
        reasons: dict[int, list[dict[str, Any]]] = {}
        for row in why.iter_rows(named=True):
            reasons.setdefault(row["_r"], []).append(row)
        last_fired = dict(fired.iter_rows())
        rows: list[dict[str, Any]] = []
        # Per address, in time: an alert starts at a hit ``quiet`` after the last one
        # started and gathers the hits that follow within ``quiet``.
        groups: list[list[dict[str, Any]]] = []
        open_group: dict[str | None, list[dict[str, Any]]] = {}
        for hit in hits.iter_rows(named=True):
            ip = hit["_ip"]
            before = last_fired.get(ip) if ip is not None else None
            if before is None or hit["_ts"] - before >= self.quiet:
                group = [hit]
                groups.append(group)
                open_group[ip] = group
                if ip is not None:
                    last_fired[ip] = hit["_ts"]
            elif ip in open_group:
                open_group[ip].append(hit)

        # Addresses whose first anomaly is the same (the same new parameter on the same
        # page, the same character in the same field), as rare, share one alert: a flood from six
        # hundred addresses is one alert naming them, not six hundred.
        def risk_of(group: list[dict[str, Any]]) -> int:
            top = max(h["_score"] for h in group)
            return int(min(100, spec.base_risk + round(5 * (top - spec.min_score))))

        def signature(group: list[dict[str, Any]]) -> tuple[Any, ...]:
            why = reasons.get(group[0]["_r"], [])
            first = why[0] if why else {}
            # The risk too: an alert's risk is each of its requests' own.
            return (first.get(_F), first.get(_NODE), first.get(_ITEM), risk_of(group))

        shared: dict[tuple[Any, ...], list[list[dict[str, Any]]]] = {}
        for group in groups:
            shared.setdefault(signature(group), []).append(group)
        for together in shared.values():
            shown = [h for group in together for h in group]
            ips = list(dict.fromkeys(g[0]["_ip"] for g in together if g[0]["_ip"] is not None))
            ip = together[0][0]["_ip"]
            top = max(shown, key=lambda h: h["_score"])
            said = [_explain(r) for r in reasons.get(top["_r"], [])[:3]]
            ids = [h["_id"] for h in shown if h["_id"]][:MAX_IDS]
            risk = risk_of(shown)
            where = f"{top['_method'] or ''} {top['_path']}".strip()
            who = ip or "an unknown address"
            if len(ips) > 1:
                who += f" and {len(ips) - 1:,} other address{'es' if len(ips) > 2 else ''}"
            message = f"{spec.title}: {where} from {who}: " + "; ".join(said)
            details: dict[str, Any] = {
                "requests": len(shown),
                "score": round(top["_score"], 2),
                "min_score": spec.min_score,
                "reasons": [
                    {
                        "attribute": r[_F],
                        "where": r["_where"] or "/",
                        "parameter": r["_param"],
                        "p": float(f"{r['_p']:.3g}"),
                        "said": _explain(r),
                    }
                    for r in reasons.get(top["_r"], [])[:8]
                ],
            }
            if len(ips) > 1:
                details["members"] = {"source.ip": ips[:MAX_MEMBERS]}
            at: datetime = together[0][0]["_ts"]
            rows.append(
                alert_record(
                    spec,
                    at=at,
                    key=(ip or "", together[0][0]["_id"] or ""),
                    entity={"source.ip": ip},
                    event_ids=ids,
                    message=message,
                    details=details,
                    risk=risk,
                )
            )
        if last_fired:
            now = max(last_fired.values())
            kept = {k: v for k, v in last_fired.items() if now - v < self.quiet}
            state.put(
                "fired",
                pl.DataFrame(
                    {"source.ip": list(kept), "_ts": list(kept.values())}, schema=_FIRED_SCHEMA
                ),
            )
        if not rows:
            return empty_alerts()
        return pl.DataFrame(rows, schema=ALERT_SCHEMA).sort("@timestamp")


def _shown(text: str | None, limit: int = 40) -> str:
    text = text or ""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _explain(row: dict[str, Any]) -> str:
    """One piece of evidence in words."""
    f, n, d = row[_F], row["_n"], row["_d"]
    node = row["_where"] or "/"
    param = row["_param"]
    if f == "length":
        return (
            f"`{param}` is normally up to {row['_max']} characters (mean {row['_mean']:.1f}); "
            f"got {row['_len']}"
        )
    values = f"{n:,} value{'s' if n != 1 else ''}"
    requests = f"{n:,} request{'s' if n != 1 else ''}"
    if f == PATH:
        return (
            f"{node} was followed by {d} different segment(s) in {requests}, "
            f"never {_shown(row['_shown'])}"
        )
    if f == METHOD:
        return f"{node} received {d} method(s) in {requests}, never {row['_shown']}"
    if f == NAME:
        return f"{node} received {d} parameter name(s) in {values}, never {_shown(row['_shown'])}"
    if f == CHAR:
        shown = {"d": "a digit", "a": "a letter", "A": "a non-ASCII letter", " ": "a space"}.get(
            row["_shown"], repr(row["_shown"])
        )
        return f"`{param}` held {d} kind(s) of character in {values}, never {shown}"
    char = str(node).rsplit(" ", 1)[-1]
    return f"`{param}` held {char!r} {d} different number(s) of times in {values}, never {row['_shown']}"
