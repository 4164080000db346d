"""Shop platforms as content: how each one's login endpoints answer, read from YAML files.

``content/platforms/<id>.yaml`` describes one platform (WooCommerce, Magento, ...): its
login endpoints (method, path and query patterns) and how an access log shows the outcome
of a login there, either by the response status (``302: success``, ``200: failure``) or,
where the status says nothing, by the request the same client makes next
(``follow_up``). :mod:`shopwatch.enrich.logins` applies them to ``http.access`` events.

A user's folders (``detect.platforms_dirs``) overlay the shipped files by ``id``. Every
file is validated with pydantic (``extra="forbid"``: a typo is an error) and every
pattern by Polars, the engine that runs it; a bad file is a :class:`ContentError` naming
the file and the line of the offending key, and is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shopwatch.config import parse_duration
from shopwatch.errors import ConfigError, ContentError

__all__ = [
    "MAX_FOLLOW_UP",
    "Endpoint",
    "FollowUp",
    "FollowUpRule",
    "LoadedPlatforms",
    "Platform",
    "builtin_platforms_dir",
    "load_platforms",
    "read_platform_file",
    "select_platforms",
]

#: The longest wait for a follow-up request a file may ask for: the logins waiting for
#: one are held back from detection that long (in event time).
MAX_FOLLOW_UP = timedelta(seconds=60)

#: What a login's outcome can be (ECS ``event.outcome``).
Outcome = Literal["success", "failure", "unknown"]
#: How a status reads: an outcome, ``throttled`` (a failure, ``event.reason: throttled``)
#: or ``follow_up`` (judged by the client's next request).
Reading = Literal["success", "failure", "unknown", "throttled", "follow_up"]


def _regex(value: str) -> str:
    """A pattern Polars accepts (no look-around, no back-references), matched ignoring case."""
    try:
        pl.Series([""], dtype=pl.String).str.contains(f"(?i){value}")
    except pl.exceptions.PolarsError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        said = [line.removeprefix("error: ") for line in lines if line.startswith("error:")]
        reason = (said or lines or [type(err).__name__])[0]
        raise ValueError(f"pattern {value!r} is refused by Polars' regex engine: {reason}") from err
    return value


def _status_key(value: Any) -> str:
    """``302`` or ``"302"`` → ``"302"``; ``"4xx"`` → ``"4xx"``; anything else is an error."""
    text = str(value).strip().lower()
    if text.isdigit() and 100 <= int(text) <= 599:
        return text
    if len(text) == 3 and text[0] in "12345" and text[1:] == "xx":
        return text
    raise ValueError(f"status {value!r} is neither a code (100-599) nor a class such as 4xx")


def _methods(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Regex = Annotated[str, Field(min_length=1), AfterValidator(_regex)]
StatusMap = dict[Annotated[str, BeforeValidator(_status_key)], Reading]
Methods = Annotated[
    list[Annotated[str, Field(pattern=r"^[A-Z]+$")]],
    BeforeValidator(_methods),
    Field(min_length=1),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FollowUpRule(_Strict):
    """One way the next request reads: its path (and, if given, status) → an outcome."""

    path: Regex
    status: list[int] = []
    outcome: Outcome


class FollowUp(_Strict):
    """Judging a login by the request the same client (address and user agent) makes next.

    The next request that is not ``skip``ped, if it comes within ``within`` and is one of
    ``method``, is read by the first of ``rules`` it matches, else as ``otherwise``. When
    the client's next request comes later, or is of another method (a bot posting again
    instead of following the redirect), or never comes, the login reads ``unanswered``.
    """

    within: str = "5s"
    method: Methods = ["GET"]
    skip: Regex | None = None
    rules: list[FollowUpRule] = Field(min_length=1)
    otherwise: Outcome = "unknown"
    unanswered: Outcome = "unknown"

    @field_validator("within")
    @classmethod
    def _short(cls, value: str) -> str:
        wait = parse_duration(value)
        if not timedelta(0) < wait <= MAX_FOLLOW_UP:
            raise ValueError(f"within {value!r} must be above 0 and at most 60s")
        return value

    @property
    def wait(self) -> timedelta:
        """``within`` as a timedelta."""
        return parse_duration(self.within)


class Endpoint(_Strict):
    """One login endpoint: which requests it is, and how their status reads.

    A status the map does not name (nor its class, nor the platform's defaults) reads as
    ``unknown``: the request is a login whose outcome the log does not tell. With
    ``is_login: false`` the entry names requests that look like logins but are not (a
    registration form posted to the login page): they stay plain requests, and no later
    endpoint reads them.
    """

    name: str = Field(min_length=1)
    method: Methods = ["POST"]
    path: Regex
    query: Regex | None = None
    not_query: Regex | None = None
    is_login: bool = True
    status: StatusMap = {}
    follow_up: FollowUp | None = None

    @model_validator(mode="after")
    def _follow_up_used(self) -> Endpoint:
        if not self.is_login and (self.status or self.follow_up is not None):
            raise ValueError(f"endpoint {self.name!r} is not a login: it reads no status")
        reads_next = "follow_up" in self.status.values()
        if reads_next and self.follow_up is None:
            raise ValueError(
                f"endpoint {self.name!r} reads a status as follow_up but has no follow_up section"
            )
        if self.follow_up is not None and not reads_next:
            raise ValueError(
                f"endpoint {self.name!r} has a follow_up section but no status reads as follow_up"
            )
        return self


class Platform(_Strict):
    """One shop platform's login endpoints (a file of ``content/platforms``).

    ``status`` gives readings every endpoint shares (its own map wins). Platforms are
    tried by ``order`` (then ``id``); the first endpoint a request matches decides.
    """

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1)
    description: str = ""
    order: int = 50
    status: StatusMap = {}
    logins: list[Endpoint] = Field(min_length=1)

    @field_validator("status")
    @classmethod
    def _no_shared_follow_up(cls, value: dict[str, Reading]) -> dict[str, Reading]:
        if "follow_up" in value.values():
            raise ValueError("follow_up belongs to an endpoint's own status map")
        return value

    def readings(self, endpoint: Endpoint) -> dict[str, Reading]:
        """The endpoint's status map over the platform's shared one (none if not a login)."""
        return {**self.status, **endpoint.status} if endpoint.is_login else {}


@dataclass
class LoadedPlatforms:
    """Platforms by id, the file each came from, and the files that could not be used."""

    platforms: dict[str, Platform] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    errors: list[ContentError] = field(default_factory=list)


def builtin_platforms_dir() -> Path:
    """The platform files shipped with the package."""
    return Path(str(resources.files("shopwatch") / "content" / "platforms"))


def _line_at(node: yaml.Node, loc: Sequence[int | str]) -> int:
    """The line (from 1) of the deepest key or item of ``node`` that ``loc`` leads to."""
    line: int = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if str(kv[0].value) == str(part)), None)
            if match is None:
                break
            line, node = int(match[0].start_mark.line) + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = int(node.start_mark.line) + 1
        else:
            break
    return line


#: The model that validates the mapping at a location (its named parts, list positions left out).
_MODELS: dict[tuple[str, ...], type[BaseModel]] = {
    (): Platform,
    ("logins",): Endpoint,
    ("logins", "follow_up"): FollowUp,
    ("logins", "follow_up", "rules"): FollowUpRule,
}


def _problem(error: Any) -> str:
    """Pydantic's message, with the keys that are allowed where an unknown key stands."""
    if error["type"] == "extra_forbidden":
        parent = tuple(str(p) for p in error["loc"][:-1] if isinstance(p, str))
        model = _MODELS.get(parent)
        known = f"; known keys: {', '.join(model.model_fields)}" if model else ""
        return f"unknown key {error['loc'][-1]!r}{known}"
    return str(error["msg"]).removeprefix("Value error, ")


def read_platform_file(path: Path) -> Platform:
    """One platform file, validated; :class:`ContentError` with ``file:line`` when it is not."""
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else 0
        raise ContentError(f"not valid YAML: {err.problem}", f"{path}:{line}") from err
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ContentError(f"cannot read platform file: {err}", str(path)) from err
    if node is None or not isinstance(raw, dict):
        raise ContentError("a platform file is a mapping with id, name and logins", f"{path}:1")
    try:
        return Platform.model_validate(raw)
    except ValidationError as err:
        problems = err.errors(include_input=False, include_url=False)
        first = _line_at(node, problems[0]["loc"])
        said = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<top>'} (line {_line_at(node, e['loc'])}): "
            f"{_problem(e)}"
            for e in problems
        )
        raise ContentError(said, f"{path}:{first}") from err


def load_platforms(extra_dirs: Iterable[Path] = ()) -> LoadedPlatforms:
    """The shipped platforms overlaid by ``extra_dirs`` (later folders win, by ``id``).

    A file that cannot be used is listed in ``errors`` and skipped; it never stops the rest.
    """
    loaded = LoadedPlatforms()
    for folder in [builtin_platforms_dir(), *extra_dirs]:
        if not folder.is_dir():
            loaded.errors.append(ContentError("platforms folder does not exist", str(folder)))
            continue
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            try:
                platform = read_platform_file(path)
            except ContentError as err:
                loaded.errors.append(err)
                continue
            loaded.platforms[platform.id] = platform
            loaded.sources[platform.id] = str(path)
    return loaded


def select_platforms(loaded: LoadedPlatforms, wanted: Sequence[str] | None) -> list[Platform]:
    """The platforms named by ``wanted`` (all when None), in the order they are tried.

    Raises :class:`ConfigError` for a name no platform file carries.
    """
    if wanted is None:
        chosen = list(loaded.platforms.values())
    else:
        unknown = sorted(set(wanted) - set(loaded.platforms))
        if unknown:
            raise ConfigError(
                f"detect.login_platforms names unknown platforms {unknown}; "
                f"known: {', '.join(sorted(loaded.platforms))}"
            )
        chosen = [loaded.platforms[name] for name in dict.fromkeys(wanted)]
    return sorted(chosen, key=lambda p: (p.order, p.id))
