"""Who may use the web UI and API: the bearer token, and HMAC-signed session cookies.

The token is never stored in a cookie, a page or a log. Logging in with it yields a
session: ``v1.<payload>.<signature>`` where the payload (base64url JSON) names the analyst
and the expiry, and the signature is HMAC-SHA256 under a key derived from the token, so
changing the token ends every session.

>>> auth = Auth("correct-horse-battery-staple")
>>> cookie = auth.issue("alice", now=1_700_000_000)
>>> auth.session(cookie, now=1_700_000_100).analyst
'alice'
>>> auth.session(cookie[:-2] + "xx", now=1_700_000_100) is None
True
>>> auth.is_token("correct-horse-battery-staple"), auth.is_token("guess")
(True, False)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Final

import orjson

from shopwatch.errors import ConfigError

__all__ = ["COOKIE_NAME", "MIN_TOKEN_CHARS", "Auth", "Principal", "clean_analyst"]

COOKIE_NAME: Final = "shopwatch_session"
MIN_TOKEN_CHARS: Final = 16
_VERSION: Final = "v1"
_KEY_LABEL: Final = b"shopwatch.web.session.v1"
_ANALYST_MAX: Final = 64
_ANALYST_BAD: Final = re.compile(r"[^\w.@+\- ]+")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def clean_analyst(name: str | None, default: str = "analyst") -> str:
    """An analyst name fit to store and show: word characters, ``.@+-`` and spaces, ≤ 64.

    >>> clean_analyst("  Alice <script>  ")
    'Alice script'
    >>> clean_analyst("", default="api")
    'api'
    """
    cleaned = " ".join(_ANALYST_BAD.sub("", name or "").split())[:_ANALYST_MAX].strip()
    return cleaned or default


@dataclass(frozen=True, slots=True)
class Principal:
    """Whoever made a request: an analyst with a session, or an API client with the token."""

    analyst: str
    via: str  # "session" or "token"


class Auth:
    """Checks the bearer token and issues and verifies session cookies.

    ``token`` must have at least :data:`MIN_TOKEN_CHARS` characters: there is no default
    token and a short one is refused (``ConfigError``). Sessions last ``session_ttl_s``.
    """

    def __init__(self, token: str, *, session_ttl_s: int = 12 * 3600) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ConfigError(
                "the web UI needs an API token: set web.token in the config file or "
                "SHOPWATCH_WEB__TOKEN (e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        if len(token) < MIN_TOKEN_CHARS:
            raise ConfigError(
                f"the web API token is {len(token)} characters long; use at least "
                f"{MIN_TOKEN_CHARS} random characters (web.token / SHOPWATCH_WEB__TOKEN)"
            )
        if session_ttl_s <= 0:
            raise ConfigError(f"session_ttl_s must be positive, got {session_ttl_s}")
        self._token = token.encode("utf-8")
        self._key = hmac.new(self._token, _KEY_LABEL, hashlib.sha256).digest()
        self.session_ttl_s = session_ttl_s

    def __repr__(self) -> str:  # never show the token
        return f"Auth(session_ttl_s={self.session_ttl_s})"

    def is_token(self, given: str | None) -> bool:
        """Whether ``given`` is the token (constant-time comparison)."""
        if not given:
            return False
        return hmac.compare_digest(given.encode("utf-8"), self._token)

    def bearer(self, authorization: str | None) -> bool | None:
        """``None`` without an ``Authorization`` header, else whether it carries the token."""
        if not authorization:
            return None
        scheme, _, given = authorization.partition(" ")
        return scheme.lower() == "bearer" and self.is_token(given.strip())

    def issue(self, analyst: str, *, now: float | None = None) -> str:
        """A signed session value for ``analyst`` (to be set as :data:`COOKIE_NAME`)."""
        issued = int(time.time() if now is None else now)
        body = {"a": clean_analyst(analyst), "i": issued, "e": issued + self.session_ttl_s}
        payload = _b64(orjson.dumps(body))
        return f"{_VERSION}.{payload}.{self._sign(payload)}"

    def session(self, value: str | None, *, now: float | None = None) -> Principal | None:
        """The principal of a session value; ``None`` when missing, tampered or expired."""
        if not value or len(value) > 1024:
            return None
        version, _, rest = value.partition(".")
        payload, _, signature = rest.partition(".")
        if version != _VERSION or not payload or not signature:
            return None
        if not hmac.compare_digest(signature.encode("utf-8"), self._sign(payload).encode("utf-8")):
            return None
        try:
            body = orjson.loads(_unb64(payload))
            analyst, expires = body["a"], body["e"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(analyst, str) or not isinstance(expires, int):
            return None
        if expires <= (time.time() if now is None else now):
            return None
        return Principal(analyst=analyst, via="session")

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("utf-8"), hashlib.sha256).digest())
