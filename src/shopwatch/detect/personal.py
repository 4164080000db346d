"""Personal data and secrets in outbound text: what a call to a third party carries.

:func:`scan` finds, in one text (a URL or a request body), the values of four kinds:

- ``card``: a run of 12 to 19 digits (spaces or dashes between groups allowed) that passes
  the Luhn check and starts with an issuer prefix of that length (:data:`_ISSUERS`: Visa,
  Mastercard, American Express, Discover, JCB, Diners, UnionPay, Maestro, Mir), not
  right after a ``+`` (a phone number). A random 16-digit id starting with 4 passes Luhn
  one time in ten, so the prefix and length matter; 13-digit Visa numbers are no longer
  issued and would make one German barcode (GTIN-13, prefix 40-44) in ten a card.
- ``email``: an address with a dotted domain whose last label is 2 to 24 letters.
- ``phone``: a number in international form (``+`` or ``00``) that the ``phonenumbers``
  library (Google's libphonenumber metadata) calls valid; or the value of a key named like
  a phone field (``phone``, ``shipping_phone``, ``customerPhone``, ``tel``, ``mobile``,
  ``msisdn``, ``cell``) in national form, valid in the shop's ``region``.
- ``secret``: credentials of well-known formats: AWS access key ids, Stripe secret and
  restricted keys, GitHub and GitLab tokens, Slack tokens, Google API keys, PEM private keys.

Work per text is bounded, whatever an attacker puts in it: of a text longer than 80 KiB
only the first 64 KiB and the last 16 KiB are read (``Found.truncated`` says so), at most
200 distinct phone candidates are parsed, and parsed numbers are cached.

Texts are read as sent and percent-decoded (twice, ``+`` as a space) and with JSON's
``\\u0040``-style escapes undone, so ``em=jane%40example.com`` is an address.

Values are never kept: :class:`Found` holds counts and masked samples
(:func:`mask`): ``j***@e***.com``, ``411111******1111``, ``+49*******12``,
``AKIA…(20 characters)``.
Hashed or encrypted values (an ad pixel's SHA-256 of an e-mail) are not recognised.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote_plus

import phonenumbers

__all__ = ["KINDS", "Found", "luhn_ok", "mask", "plausible_card", "scan"]

#: The kinds :func:`scan` reports, in the order messages list them.
KINDS: Final = ("card", "secret", "email", "phone")

#: Issuer prefixes (as digit-string ranges, inclusive) and the card lengths each issues.
_ISSUERS: Final[tuple[tuple[str, str, tuple[int, ...]], ...]] = (
    ("4", "4", (16, 19)),  # Visa (13-digit numbers are no longer issued; GTIN-13s look alike)
    ("51", "55", (16,)),  # Mastercard
    ("2221", "2720", (16,)),  # Mastercard 2-series
    ("34", "34", (15,)),  # American Express
    ("37", "37", (15,)),
    ("6011", "6011", (16, 17, 18, 19)),  # Discover
    ("644", "649", (16, 17, 18, 19)),
    ("65", "65", (16, 17, 18, 19)),
    ("3528", "3589", (16, 17, 18, 19)),  # JCB
    ("300", "305", (14, 15, 16, 17, 18, 19)),  # Diners Club
    ("36", "36", (14, 15, 16, 17, 18, 19)),
    ("38", "39", (16, 17, 18, 19)),
    ("62", "62", (16, 17, 18, 19)),  # UnionPay
    ("5018", "5018", (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
    ("5020", "5020", (12, 13, 14, 15, 16, 17, 18, 19)),
    ("5038", "5038", (12, 13, 14, 15, 16, 17, 18, 19)),
    ("5893", "5893", (12, 13, 14, 15, 16, 17, 18, 19)),
    ("6304", "6304", (12, 13, 14, 15, 16, 17, 18, 19)),
    ("6759", "6759", (12, 13, 14, 15, 16, 17, 18, 19)),
    ("6761", "6763", (12, 13, 14, 15, 16, 17, 18, 19)),
    ("2200", "2204", (16, 17, 18, 19)),  # Mir
)

_CARD: Final = re.compile(r"(?<![\d.+])\d(?:[ -]?\d){11,18}(?![\d.])")
_EMAIL: Final = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
_PHONE_INTL: Final = re.compile(r"(?<![\w+])(?:\+|00)[1-9](?:[ \-.()]{0,3}\d){6,14}(?!\d)")
#: A value under a key named like a phone field (``phone``, ``shipping_phone``, ``customerPhone``).
_PHONE_KEY: Final = re.compile(
    r"""(?i)(?:phone|telephone|tel|mobile|msisdn|cell)(?:_?number)?["']?\s*[=:]\s*["']?([+\d(][\d \-.()]{5,24}\d)"""
)
_SECRETS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("aws access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("stripe key", re.compile(r"\b[sr]k_live_[0-9A-Za-z]{20,99}\b")),
    ("github token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b")),
    ("gitlab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b")),
    ("slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("google api key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    (
        "private key",
        re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    ),
)
_JSON_ESCAPE: Final = re.compile(r"\\u([0-9a-fA-F]{4})")
#: Top-level "domains" that are file extensions (``logo@2x.png`` is an image, not an address).
_NOT_TLDS: Final = frozenset({"png", "jpg", "jpeg", "gif", "webp", "svg", "css", "js", "ico", "avif"})
#: Of a long text only its first and last parts are scanned (bounded work per row), and at
#: most this many phone candidates per text are parsed.
HEAD: Final = 64 * 1024
TAIL: Final = 16 * 1024
MAX_CANDIDATES: Final = 200
#: At most this many masked samples per kind are kept.
SAMPLES: Final = 3


@dataclass(slots=True)
class Found:
    """Counts and masked samples of what one or more texts carried."""

    counts: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)
    #: Whether a text was longer than is scanned (its middle was not read).
    truncated: bool = False

    def add(self, kind: str, masked: str) -> None:
        """Count one value of ``kind`` (its masked form kept among the first few)."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        kept = self.samples.setdefault(kind, [])
        if len(kept) < SAMPLES and masked not in kept:
            kept.append(masked)

    def merge(self, other: Found) -> None:
        """Add ``other``'s counts and samples to these."""
        self.truncated = self.truncated or other.truncated
        for kind, n in other.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + n
            kept = self.samples.setdefault(kind, [])
            for masked in other.samples.get(kind, []):
                if len(kept) < SAMPLES and masked not in kept:
                    kept.append(masked)

    def only(self, kinds: set[str]) -> Found:
        """The part of this finding of ``kinds``."""
        return Found(
            {k: n for k, n in self.counts.items() if k in kinds},
            {k: list(v) for k, v in self.samples.items() if k in kinds},
            self.truncated,
        )

    def __bool__(self) -> bool:
        return bool(self.counts)


def luhn_ok(digits: str) -> bool:
    """Whether a digit string passes the Luhn check.

    >>> luhn_ok("4111111111111111"), luhn_ok("4111111111111112")
    (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def plausible_card(digits: str) -> bool:
    """Luhn-valid, with an issuer prefix that issues cards of this length.

    >>> plausible_card("4111111111111111"), plausible_card("1234567812345670")
    (True, False)
    """
    n = len(digits)
    for low, high, lengths in _ISSUERS:
        if n in lengths and low <= digits[: len(low)] <= high:
            return luhn_ok(digits)
    return False


def mask(kind: str, value: str) -> str:
    """A form of ``value`` that tells an analyst what it was without disclosing it.

    >>> mask("email", "jane.doe@example.com"), mask("card", "4111 1111 1111 1111")
    ('j***@e***.com', '411111******1111')
    """
    if kind == "card":
        digits = re.sub(r"\D", "", value)
        if len(digits) < 16:  # first six and last four would leave too few digits hidden
            return "*" * (len(digits) - 4) + digits[-4:]
        return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]
    if kind == "email":
        local, _, domain = value.partition("@")
        tld = domain.rsplit(".", 1)[-1]
        return f"{local[:1]}***@{domain[:1]}***.{tld}"
    if kind == "phone":
        digits = re.sub(r"\D", "", value)
        return "+" + digits[:2] + "*" * max(len(digits) - 4, 1) + digits[-2:]
    if value.startswith("-----BEGIN"):
        return "PEM private key"
    return f"{value[:4]}…({len(value)} characters)"


def _decoded(text: str) -> str:
    """The text as sent, then percent-decoded twice and JSON-unescaped (one string)."""
    once = unquote_plus(text)
    twice = unquote_plus(once) if "%" in once else once
    if "\\u" in twice:
        twice = _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), twice)
    return twice if twice == text else f"{text}\n{twice}"


@functools.lru_cache(maxsize=8192)
def _valid_phone(text: str, region: str | None) -> str | None:
    """The number in E.164 form when libphonenumber calls it valid, else None."""
    try:
        number = phonenumbers.parse(text, None if text.lstrip().startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def scan(text: str | None, *, region: str | None = None) -> Found:
    """What personal data and secrets ``text`` carries (see the module docstring).

    ``region`` (ISO 3166 alpha-2) reads phone-field values written in national form.
    """
    found = Found()
    if not text:
        return found
    if len(text) > HEAD + TAIL:
        text = text[:HEAD] + "\n" + text[-TAIL:]
        found.truncated = True
    body = _decoded(text)
    seen: set[tuple[str, str]] = set()

    def add(kind: str, value: str) -> None:
        key = (kind, value)
        if key not in seen:
            seen.add(key)
            found.add(kind, mask(kind, value))

    for name, pattern in _SECRETS:
        for hit in pattern.finditer(body):
            add("secret", hit.group(0) if name != "private key" else "-----BEGIN PRIVATE KEY")
    for hit in _EMAIL.finditer(body):
        if hit.group(0).rsplit(".", 1)[-1].lower() not in _NOT_TLDS:
            add("email", hit.group(0).lower())
    for hit in _CARD.finditer(body):
        digits = re.sub(r"[ -]", "", hit.group(0))
        if plausible_card(digits):
            add("card", digits)
    phones: set[str] = set()
    candidates: list[tuple[str, str | None]] = [
        (h.group(0), None) for h in _PHONE_INTL.finditer(body)
    ]
    candidates += [(h.group(1), region) for h in _PHONE_KEY.finditer(body)]
    for raw, where in list(dict.fromkeys(candidates))[:MAX_CANDIDATES]:
        e164 = _valid_phone("+" + raw[2:] if raw.startswith("00") else raw, where)
        if e164:
            phones.add(e164)
    for e164 in sorted(phones):
        add("phone", e164)
    return found
