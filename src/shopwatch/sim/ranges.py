"""The ranges campaign parameters are drawn from, per kind and variant.

One table, mirrored row for row in ``docs/simulator.md`` (a test checks the two agree).
Every number a campaign uses for its size, pace or spread is drawn here from the range
given, per seed, with the distribution given, and nothing bends a draw towards a
detector's threshold: a draw that makes a campaign too small to notice stays too small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

__all__ = ["RANGES", "Range", "draw"]


@dataclass(frozen=True, slots=True)
class Range:
    """A parameter's range: ``lo`` to ``hi``, a distribution and where the range comes from."""

    lo: float
    hi: float
    dist: str  # "log-uniform", "uniform", "int log-uniform", "int uniform"
    source: str


def _lu(lo: float, hi: float, source: str) -> Range:
    return Range(lo, hi, "log-uniform", source)


def _ilu(lo: float, hi: float, source: str) -> Range:
    return Range(lo, hi, "int log-uniform", source)


def _u(lo: float, hi: float, source: str) -> Range:
    return Range(lo, hi, "uniform", source)


def _iu(lo: float, hi: float, source: str) -> Range:
    return Range(lo, hi, "int uniform", source)


_OAT7: Final = "OAT-007 credential cracking"
_OAT8: Final = "OAT-008 credential stuffing"
_F5: Final = "F5/Shape credential stuffing report (0.1-2% success)"
_AKAMAI: Final = "Akamai SOTI web attack reports"
_HYDRA: Final = "Hydra defaults (16 parallel tasks)"
_OAT14: Final = "OAT-014 vulnerability scanning"
_NUCLEI: Final = "nuclei default rate limit (150 req/s), nikto test count"
_SQLMAP: Final = "sqlmap defaults (1 thread, no delay; --threads up to 10)"
_OAT11: Final = "OAT-011 scraping"
_OAT1: Final = "OAT-001 carding"
_OAT15: Final = "OAT-015 denial of service"
_OAT19: Final = "OAT-019 account creation"
_OAT21: Final = "OAT-021 denial of inventory"
_ATO: Final = "account takeover write-ups (Sift, Akamai SOTI)"
_PROMO: Final = "promotion abuse write-ups (OAT-019 side effect, retailer reports)"
_INSIDER: Final = "insider data theft incident write-ups (Verizon DBIR)"
_VENDOR: Final = "third-party tag leaks (pixel and widget incident write-ups)"
_SSH: Final = "SSH brute force botnet reports (honeypot studies)"
_GOOGLE: Final = "Google crawl documentation (crawl rate)"
_CGNAT: Final = "RFC 6888 CGN; carrier subscriber-per-address ratios"
_MODEL: Final = "shop model (this simulator's own assumption)"
_STATUS: Final = (
    "payment provider and cloud status-page incident histories (elevated API latency, "
    "degraded performance: tens of minutes to hours)"
)
_CREEP: Final = "performance regression post-mortems (a slow query or leak creeping for hours)"
_HICCUP: Final = (
    "payment provider status pages (brief degradations: a few minutes of slower API calls)"
)
_REVOKED: Final = (
    "leaked-key revocation (GitHub secret scanning partners such as Stripe revoke a key "
    "found in public) and vendors' rate limiting of a key used beyond its quota: calls "
    "refused (401/403/429) until the key is replaced, minutes to hours"
)
_DEGRADED: Final = (
    "API providers' status-page incidents (elevated error rates: a few to a fifth of calls "
    "failing, growing over hours)"
)
_MONTH_END: Final = (
    "shop model: month-end invoice, statement and subscription runs (a few thousand mails "
    "or labels over hours)"
)
_OAT12: Final = (
    "OAT-012 cashing out; card-not-present fraud reports (Signifyd, Riskified, Sift: "
    "larger baskets, expedited shipping, reshipping drops, several cards per account)"
)

#: (kind, variant) -> parameter -> range.
RANGES: Final[dict[tuple[str, str], dict[str, Range]]] = {
    ("brute_force", "loud"): {
        "rate_per_s": _lu(1.0, 30.0, _HYDRA),
        "duration_min": _lu(2.0, 30.0, _OAT7),
        "targets": _iu(1, 3, _OAT7),
        "success_p": _u(0.0, 0.3, _MODEL),
    },
    ("brute_force", "low_slow"): {
        "interval_s": _lu(10.0, 60.0, _OAT7),
        "duration_h": _lu(2.0, 24.0, _OAT7),
        "targets": _iu(1, 3, _OAT7),
        "ips": _iu(1, 4, _OAT7),
        "success_p": _u(0.0, 0.3, _MODEL),
    },
    ("credential_stuffing", "loud"): {
        "ips": _ilu(5, 200, _AKAMAI),
        "attempts": _ilu(1_000, 20_000, _OAT8),
        "duration_min": _lu(10.0, 90.0, _OAT8),
        "known_share": _lu(0.02, 0.25, _MODEL),
        "success_rate": _lu(0.001, 0.02, _F5),
    },
    ("credential_stuffing", "low_slow"): {
        "ips": _ilu(100, 5_000, _AKAMAI),
        "attempts_per_ip": _iu(1, 3, _OAT8),
        "duration_h": _lu(2.0, 24.0, _OAT8),
        "known_share": _lu(0.02, 0.25, _MODEL),
        "success_rate": _lu(0.001, 0.02, _F5),
    },
    ("vuln_scanner", "loud"): {
        "requests": _ilu(1_000, 20_000, _NUCLEI),
        "rate_per_s": _lu(5.0, 150.0, _NUCLEI),
    },
    ("vuln_scanner", "low_slow"): {
        "requests": _ilu(200, 3_000, _OAT14),
        "interval_s": _lu(5.0, 60.0, _OAT14),
        "ips": _iu(1, 3, _OAT14),
    },
    ("sqli_probe", "loud"): {
        "requests": _ilu(300, 5_000, _SQLMAP),
        "rate_per_s": _lu(1.0, 20.0, _SQLMAP),
    },
    ("sqli_probe", "low_slow"): {
        "payloads": _ilu(3, 20, _AKAMAI),
        "duration_h": _lu(1.0, 8.0, _AKAMAI),
    },
    ("xss_probe", "loud"): {
        "requests": _ilu(200, 3_000, _AKAMAI),
        "rate_per_s": _lu(1.0, 50.0, _AKAMAI),
    },
    ("xss_probe", "low_slow"): {
        "payloads": _ilu(3, 20, _AKAMAI),
        "duration_h": _lu(1.0, 8.0, _AKAMAI),
    },
    ("scraping", "loud"): {
        "ips": _iu(1, 4, _OAT11),
        "rate_per_s": _lu(1.0, 10.0, _OAT11),
        "duration_min": _lu(10.0, 60.0, _OAT11),
    },
    ("scraping", "low_slow"): {
        "ips": _ilu(10, 250, _OAT11),
        "pages_per_ip": _ilu(5, 50, _OAT11),
        "gap_s": _u(5.0, 15.0, _OAT11),
        "duration_h": _lu(1.0, 12.0, _OAT11),
    },
    ("card_testing", "loud"): {
        "cards": _ilu(50, 2_000, _OAT1),
        "cards_per_min": _lu(2.0, 60.0, _OAT1),
        "ips": _iu(1, 5, _OAT1),
        "approve_rate": _u(0.02, 0.15, _OAT1),
    },
    ("card_testing", "low_slow"): {
        "cards": _ilu(20, 500, _OAT1),
        "attempts_per_session": _iu(1, 3, _OAT1),
        "duration_h": _lu(2.0, 24.0, _OAT1),
        "approve_rate": _u(0.02, 0.15, _OAT1),
    },
    ("ssh_brute_force", "loud"): {
        "rate_per_s": _lu(0.5, 10.0, _HYDRA),
        "duration_min": _lu(5.0, 60.0, _SSH),
    },
    ("ssh_brute_force", "low_slow"): {
        "ips": _ilu(5, 200, _SSH),
        "interval_s": _lu(60.0, 600.0, _SSH),
        "duration_h": _lu(6.0, 48.0, _SSH),
    },
    ("account_takeover", "loud"): {
        "victims": _ilu(1, 10, _ATO),
        "failed_tries": _iu(0, 20, _ATO),
        "step_gap_s": _lu(5.0, 120.0, _ATO),
    },
    ("account_takeover", "low_slow"): {
        "victims": _iu(1, 3, _ATO),
        "step_gap_s": _lu(600.0, 43_200.0, _ATO),
    },
    ("payment_fraud", "loud"): {
        "accounts": _iu(1, 3, _OAT12),
        "orders": _ilu(2, 10, _OAT12),
        "cards": _iu(2, 8, _OAT12),
        "duration_min": _lu(10.0, 90.0, _OAT12),
        "amount_eur": _lu(80.0, 1_500.0, _OAT12),
        "express_share": _u(0.3, 0.9, _OAT12),
        "foreign_card_share": _u(0.3, 1.0, _OAT12),
        "addresses": _iu(1, 2, _OAT12),
    },
    ("payment_fraud", "low_slow"): {
        "accounts": _iu(2, 12, _OAT12),
        "duration_h": _lu(6.0, 48.0, _OAT12),
        "amount_eur": _lu(40.0, 600.0, _OAT12),
        "express_share": _u(0.0, 0.6, _OAT12),
        "foreign_card_share": _u(0.0, 0.7, _OAT12),
        "addresses": _iu(1, 4, _OAT12),
    },
    ("promo_abuse", "loud"): {
        "accounts": _ilu(20, 500, _PROMO),
        "duration_min": _lu(10.0, 120.0, _PROMO),
        "devices": _iu(1, 5, _PROMO),
        "addresses": _iu(1, 5, _PROMO),
    },
    ("promo_abuse", "low_slow"): {
        "accounts": _ilu(5, 60, _PROMO),
        "duration_h": _lu(6.0, 48.0, _PROMO),
        "addresses": _iu(1, 3, _PROMO),
    },
    ("inventory_hoarding", "loud"): {
        "sessions": _ilu(20, 300, _OAT21),
        "ips": _iu(1, 10, _OAT21),
        "reservation_min": _u(10.0, 20.0, _OAT21),
        "duration_min": _lu(30.0, 240.0, _OAT21),
        "max_quantity": _iu(5, 10, _OAT21),
    },
    ("inventory_hoarding", "low_slow"): {
        "sessions": _ilu(3, 30, _OAT21),
        "reservation_min": _u(10.0, 20.0, _OAT21),
        "duration_h": _lu(6.0, 48.0, _OAT21),
        "max_quantity": _iu(5, 10, _OAT21),
    },
    ("fake_account_creation", "loud"): {
        "ips": _iu(1, 5, _OAT19),
        "signups": _ilu(100, 2_000, _OAT19),
        "rate_per_s": _lu(0.2, 5.0, _OAT19),
    },
    ("fake_account_creation", "low_slow"): {
        "ips": _ilu(100, 1_000, _OAT19),
        "requests_per_ip": _iu(1, 10, _OAT19),
        "duration_h": _lu(2.0, 24.0, _OAT19),
    },
    ("staff_exfiltration", "loud"): {
        "records": _ilu(10_000, 500_000, _INSIDER),
    },
    ("staff_exfiltration", "low_slow"): {
        "exports": _iu(3, 20, _INSIDER),
        "records": _ilu(1_000, 20_000, _INSIDER),
        "duration_h": _lu(4.0, 48.0, _INSIDER),
    },
    ("vendor_data_leak", "loud"): {
        "calls_per_min": _lu(1.0, 30.0, _VENDOR),
        "duration_min": _lu(30.0, 240.0, _VENDOR),
        "request_kb": _lu(2.0, 50.0, _VENDOR),
    },
    ("vendor_data_leak", "low_slow"): {
        "calls_per_min": _lu(0.05, 1.0, _VENDOR),
        "duration_h": _lu(6.0, 48.0, _VENDOR),
        "request_kb": _lu(0.5, 4.0, _VENDOR),
    },
    ("http_flood", "loud"): {
        "ips": _ilu(50, 2_000, _OAT15),
        "rate_per_s": _lu(30.0, 300.0, _OAT15),
        "duration_min": _lu(2.0, 10.0, _OAT15),
    },
    ("http_flood", "low_slow"): {
        "ips": _iu(10, 60, _OAT15),
        "rate_per_ip_s": _lu(0.02, 0.3, _OAT15),
        "duration_min": _lu(20.0, 180.0, _OAT15),
    },
    # ------------------------------------------------------------------ benign
    ("flash_sale", "loud"): {
        "multiplier": _lu(3.0, 10.0, "retail peak reports (Shopify BFCM, Cloudflare)"),
        "duration_min": _lu(20.0, 60.0, _MODEL),
    },
    ("corporate_nat", "loud"): {
        "employees": _ilu(20, 500, _MODEL),
        "visits_per_hour": _u(0.05, 0.3, _MODEL),
        "duration_h": _u(8.0, 10.0, "a working day"),
    },
    ("search_crawler", "loud"): {
        "rate_per_s": _lu(0.1, 1.0, _GOOGLE),
        "ips": _iu(2, 8, _GOOGLE),
        "duration_min": _lu(30.0, 240.0, _GOOGLE),
    },
    ("forgetful_customer", "loud"): {
        "failures": _iu(1, 6, _MODEL),
        "typing_gap_s": _lu(5.0, 40.0, _MODEL),
    },
    ("checkout_latency_shift", "loud"): {
        "factor": _lu(2.0, 8.0, _STATUS),
        "duration_min": _lu(20.0, 180.0, _STATUS),
    },
    ("checkout_latency_shift", "low_slow"): {
        "factor": _lu(1.3, 3.0, _CREEP),
        "ramp_min": _lu(30.0, 240.0, _CREEP),
        "duration_h": _lu(2.0, 24.0, _CREEP),
    },
    ("vendor_anomaly", "loud"): {
        "share": _u(0.3, 1.0, _REVOKED),
        "duration_min": _lu(10.0, 120.0, _REVOKED),
    },
    ("vendor_anomaly", "low_slow"): {
        "share": _lu(0.03, 0.2, _DEGRADED),
        "ramp_min": _lu(60.0, 360.0, _DEGRADED),
        "duration_h": _lu(2.0, 24.0, _DEGRADED),
    },
    ("vendor_month_end", "loud"): {
        "calls_per_min": _lu(2.0, 20.0, _MONTH_END),
        "duration_h": _lu(1.0, 6.0, _MONTH_END),
    },
    ("latency_blip", "loud"): {
        "factor": _lu(1.5, 3.0, _HICCUP),
        "duration_min": _u(1.0, 3.0, _HICCUP),
    },
    ("office_bulk_export", "loud"): {
        "usual_records": _ilu(100, 2_500, _MODEL),
        "factor": _u(2.0, 6.0, _MODEL),
    },
    ("declined_card_retry", "loud"): {
        "customers": _iu(1, 5, _MODEL),
        "retries": _iu(1, 4, "card network retry guidance (Visa/Mastercard)"),
        "duration_min": _lu(10.0, 60.0, _MODEL),
    },
    ("mobile_cgnat", "loud"): {
        "customers": _ilu(10, 200, _CGNAT),
        "duration_h": _lu(1.0, 8.0, _CGNAT),
    },
    ("gift_order", "loud"): {
        "customers": _iu(1, 4, _MODEL),
        "step_gap_s": _lu(60.0, 1_800.0, _MODEL),
        "basket_factor": _lu(2.0, 6.0, _MODEL),
        "abroad_share": _u(0.0, 0.5, _MODEL),
    },
    ("moving_house", "loud"): {
        "customers": _iu(1, 3, _MODEL),
        "step_gap_s": _lu(60.0, 7_200.0, _MODEL),
    },
    ("account_upkeep", "loud"): {
        "customers": _iu(1, 5, _MODEL),
        "step_gap_s": _lu(20.0, 1_800.0, _MODEL),
    },
}


def draw(
    rng: np.random.Generator, kind: str, variant: str, record: dict[str, Any] | None = None
) -> dict[str, float]:
    """One draw of every parameter of ``kind``/``variant``; integers for the int ranges.

    ``record`` (a campaign's ground-truth params) receives every value drawn, floats
    rounded to four significant digits.
    """
    out: dict[str, float] = {}
    for name, r in RANGES[(kind, variant)].items():
        if r.dist == "log-uniform":
            out[name] = float(np.exp(rng.uniform(np.log(r.lo), np.log(r.hi))))
        elif r.dist == "uniform":
            out[name] = float(rng.uniform(r.lo, r.hi))
        elif r.dist == "int log-uniform":
            out[name] = int(np.floor(np.exp(rng.uniform(np.log(r.lo), np.log(r.hi + 1)))))
        elif r.dist == "int uniform":
            out[name] = int(rng.integers(int(r.lo), int(r.hi) + 1))
        else:
            raise ValueError(f"unknown distribution {r.dist!r} for {kind}/{variant}.{name}")
    if record is not None:
        for name, value in out.items():
            record[name] = value if isinstance(value, int) else float(f"{value:.4g}")
    return out
