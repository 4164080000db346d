"""The simulated shop: customers with devices, addresses, cards and habits; products; staff.

Everything is drawn from one seed, so the same seed gives the same shop. Customers are
plain records (a few thousand); the per-hour choice of who visits is vectorized.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np

from shopwatch.sim import data

__all__ = [
    "DIURNAL",
    "FX",
    "Card",
    "Customer",
    "Device",
    "IpPool",
    "Product",
    "Shop",
    "Staff",
    "build_shop",
    "pick_browser",
]

#: Relative activity by local hour (0 = midnight): quiet nights, lunch and evening peaks.
DIURNAL: Final = np.array(
    [0.30, 0.18, 0.11, 0.08, 0.07, 0.10, 0.22, 0.42, 0.62, 0.78, 0.88, 0.95,
     1.02, 0.98, 0.92, 0.90, 0.95, 1.02, 1.12, 1.28, 1.38, 1.32, 1.02, 0.62]
)
#: Units of a currency per euro (rounded, for prices in the customer's currency).
FX: Final[dict[str, float]] = {
    "EUR": 1.0, "GBP": 0.85, "USD": 1.08, "CHF": 0.95, "SEK": 11.4, "PLN": 4.3, "DKK": 7.46,
    "CAD": 1.48, "AUD": 1.65,
}
SHOP_DOMAIN: Final = "nordhaven.example"
SHOP_OFFSET: Final = 1  # the shop's office keeps Central European (standard) time


@dataclass(frozen=True, slots=True)
class Device:
    """One browser on one device: a stable fingerprint id and user agent."""

    id: str
    ua: str
    is_mobile: bool


@dataclass(frozen=True, slots=True)
class Card:
    """A payment card as the shop sees it (never the number)."""

    fingerprint: str
    bin: str
    last4: str
    country: str
    brand: str
    is_expired: bool


@dataclass(frozen=True, slots=True)
class Customer:
    """A registered customer and their habits."""

    index: int
    user_id: str
    email: str
    country: str
    utc_offset: int
    currency: str
    devices: tuple[Device, ...]
    ips: tuple[str, ...]  # home first, then a mobile-carrier address
    cards: tuple[Card, ...]
    address_hash: str
    basket: float  # mean items per order


@dataclass(frozen=True, slots=True)
class Product:
    """A catalogue entry (price in euros)."""

    id: str
    name: str
    category: str
    price: float
    images: int


@dataclass(frozen=True, slots=True)
class Staff:
    """A back-office account that reads customer data during office hours."""

    email: str
    user_id: str
    role: str


class IpPool:
    """Samples addresses uniformly from a weighted list of CIDR ranges (no .0/.255 hosts)."""

    def __init__(self, cidrs: list[str], weights: list[float] | None = None) -> None:
        nets = [ipaddress.IPv4Network(c) for c in cidrs]
        self.cidrs = cidrs
        self._base = np.array([int(n.network_address) for n in nets], dtype=np.int64)
        self._size = np.array([n.num_addresses for n in nets], dtype=np.int64)
        w = np.array(weights if weights is not None else [1.0] * len(nets), dtype=float)
        self._p = w / w.sum()

    def sample(self, rng: np.random.Generator, n: int | None = None) -> list[str]:
        """``n`` addresses (one if ``n`` is None, still as a list)."""
        k = 1 if n is None else n
        which = rng.choice(len(self._base), size=k, p=self._p)
        offset = rng.integers(0, self._size[which])
        numbers = self._base[which] + offset
        last = numbers & 0xFF
        numbers = np.where(last == 0, numbers + 1, np.where(last == 255, numbers - 1, numbers))
        return [str(ipaddress.IPv4Address(int(x))) for x in numbers]

    def one(self, rng: np.random.Generator) -> str:
        """One address."""
        return self.sample(rng, 1)[0]


_UA_STRINGS: Final = [u for u, _, _ in data.BROWSER_UAS]
_UA_P: Final = np.array([w for _, w, _ in data.BROWSER_UAS]) / sum(w for _, w, _ in data.BROWSER_UAS)
_UA_MOBILE: Final = np.array([m for _, _, m in data.BROWSER_UAS])


def pick_browser(rng: np.random.Generator, mobile: bool | None = None) -> tuple[str, bool]:
    """A current browser user agent by market share; ``mobile`` restricts the kind."""
    p = _UA_P
    if mobile is not None:
        p = np.where(mobile == _UA_MOBILE, _UA_P, 0.0)
        p = p / p.sum()
    i = int(rng.choice(len(_UA_STRINGS), p=p))
    return _UA_STRINGS[i], bool(_UA_MOBILE[i])


def _hex(*parts: object, n: int = 16) -> str:
    return hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=n // 2 + 1).hexdigest()[:n]


class Shop:
    """The world a simulation runs in; build it with :func:`build_shop`."""

    def __init__(
        self, seed: int, customers: list[Customer], products: list[Product], staff: list[Staff],
        residential: dict[str, IpPool], datacenter: IpPool, retired_products: list[str],
    ) -> None:
        self.seed = seed
        self.customers = customers
        self.products = products
        self.staff = staff
        self.residential = residential
        self.datacenter = datacenter
        self.retired_products = retired_products
        self.countries = list(data.COUNTRIES)
        w = np.array([data.COUNTRIES[c][0] for c in self.countries])
        self.country_p = w / w.sum()
        self.by_email = {c.email: c for c in customers}
        self.product_by_id = {p.id: p for p in products}
        self._offsets = np.array([c.utc_offset for c in customers])
        rng = np.random.default_rng([seed, 7])
        self._freq = rng.lognormal(0.0, 0.9, size=len(customers))
        self._peak = rng.integers(0, 24, size=len(customers))
        self._hour_cache: dict[int, np.ndarray] = {}
        # Popularity of products: a few best sellers, a long tail.
        pop = rng.zipf(1.6, size=len(products)).astype(float)
        self.product_p = np.minimum(pop, 50.0) / np.minimum(pop, 50.0).sum()
        self.category_products: dict[str, list[int]] = {}
        for i, p in enumerate(products):
            self.category_products.setdefault(p.category, []).append(i)

    def visit_p(self, utc_hour: int) -> np.ndarray:
        """Probability of each customer being the next visitor at a UTC hour (their habits)."""
        cached = self._hour_cache.get(utc_hour)
        if cached is None:
            local = (utc_hour + self._offsets) % 24
            near_peak = np.abs(((local - self._peak) + 12) % 24 - 12) <= 2
            w = self._freq * DIURNAL[local] * np.where(near_peak, 2.0, 1.0)
            cached = w / w.sum()
            self._hour_cache[utc_hour] = cached
        return cached

    @cached_property
    def hourly_rate(self) -> np.ndarray:
        """Relative traffic per UTC hour (mean 1.0), from where the customers live."""
        rates = np.zeros(24)
        for h in range(24):
            local = (h + self._offsets) % 24
            rates[h] = float((self._freq * DIURNAL[local]).sum())
        out: np.ndarray = rates / float(rates.mean())
        return out

    def rate_at(self, ts: float) -> float:
        """Relative traffic at an epoch second, interpolated between hours."""
        hour = (ts / 3600.0) % 24
        lo = int(hour) % 24
        frac = hour - int(hour)
        return float(self.hourly_rate[lo] * (1 - frac) + self.hourly_rate[(lo + 1) % 24] * frac)

    def pick_customer(self, rng: np.random.Generator, ts: float) -> Customer:
        """A customer likely to be shopping at ``ts``."""
        p = self.visit_p(int(ts // 3600) % 24)
        return self.customers[int(rng.choice(len(self.customers), p=p))]

    def pick_country(self, rng: np.random.Generator) -> str:
        """A country by market share."""
        return self.countries[int(rng.choice(len(self.countries), p=self.country_p))]

    def pick_product(self, rng: np.random.Generator) -> Product:
        """A product by popularity."""
        return self.products[int(rng.choice(len(self.products), p=self.product_p))]

    def home_ip(self, rng: np.random.Generator, country: str) -> str:
        """A residential address in ``country``."""
        return self.residential[country].one(rng)


def _email(rng: np.random.Generator, first: str, last: str, domain: str) -> str:
    style = rng.integers(0, 6)
    last = last.replace("-", "")
    if style == 0:
        local = f"{first}.{last}"
    elif style == 1:
        local = f"{first}{last}"
    elif style == 2:
        local = f"{first[0]}.{last}"
    elif style == 3:
        local = f"{first}.{last}{rng.integers(1, 99)}"
    elif style == 4:
        local = f"{first}{rng.integers(1960, 2006)}"
    else:
        local = f"{first}_{last}"
    return f"{local}@{domain}"


def _card(rng: np.random.Generator, seed: int, owner: int, k: int, country: str) -> Card:
    brand = "visa" if rng.random() < 0.58 else ("mastercard" if rng.random() < 0.9 else "amex")
    if brand == "visa":
        bin_ = "4" + "".join(str(d) for d in rng.integers(0, 10, 5))
    elif brand == "mastercard":
        bin_ = str(rng.integers(51, 56)) + "".join(str(d) for d in rng.integers(0, 10, 4))
    else:
        bin_ = str(rng.choice([34, 37])) + "".join(str(d) for d in rng.integers(0, 10, 4))
    return Card(
        fingerprint=_hex("card", seed, owner, k, n=16),
        bin=bin_,
        last4=f"{rng.integers(0, 10000):04d}",
        country=country if rng.random() < 0.96 else str(rng.choice(list(data.COUNTRIES))),
        brand=brand,
        is_expired=bool(rng.random() < 0.02),
    )


def build_shop(seed: int, customers: int = 5000, products: int = 600) -> Shop:
    """The shop of ``seed``: ``customers`` accounts, ``products`` catalogue entries, staff."""
    rng = np.random.default_rng([seed, 0])
    residential: dict[str, IpPool] = {}
    for country in data.COUNTRIES:
        cidrs = [c for cc, _, _, c in data.RESIDENTIAL_RANGES if cc == country]
        sizes = [ipaddress.IPv4Network(c).num_addresses ** 0.5 for c in cidrs]
        residential[country] = IpPool(cidrs, sizes)
    datacenter = IpPool([c for _, _, c in data.DATACENTER_RANGES])

    countries = list(data.COUNTRIES)
    cw = np.array([data.COUNTRIES[c][0] for c in countries])
    home = rng.choice(len(countries), size=customers, p=cw / cw.sum())
    people: list[Customer] = []
    seen: set[str] = set()
    for i in range(customers):
        country = countries[int(home[i])]
        _, offset, currency, group = data.COUNTRIES[country]
        first = str(rng.choice(data.FIRST_NAMES[group]))
        last = str(rng.choice(data.LAST_NAMES[group]))
        domain = str(rng.choice(data.EMAIL_DOMAINS[group]))
        email = _email(rng, first, last, domain)
        while email in seen:
            email = email.replace("@", f"{rng.integers(1, 999)}@", 1)
        seen.add(email)
        n_dev = 1 if rng.random() < 0.55 else 2
        devices = []
        for k in range(n_dev):
            ua, mobile = pick_browser(rng, mobile=None if k == 0 else True)
            devices.append(Device(_hex("device", seed, i, k, n=32), ua, mobile))
        ips = [residential[country].one(rng)]
        if any(d.is_mobile for d in devices):
            ips.append(residential[country].one(rng))
        cards = tuple(_card(rng, seed, i, k, country) for k in range(1 if rng.random() < 0.7 else 2))
        people.append(
            Customer(
                index=i,
                user_id=f"u{100000 + i * 7 + int(rng.integers(0, 7))}",
                email=email,
                country=country,
                utc_offset=offset,
                currency=currency,
                devices=tuple(devices),
                ips=tuple(ips),
                cards=cards,
                address_hash=_hex("address", seed, i, n=24),
                basket=float(rng.uniform(1.2, 3.0)),
            )
        )

    catalogue: list[Product] = []
    ids = rng.choice(np.arange(10000, 99999), size=products + 40, replace=False)
    ids.sort()
    for k in range(products):
        category = str(rng.choice(data.CATEGORIES))
        noun = category.split("-")[-1].rstrip("s") or category
        name = f"{rng.choice(data.PRODUCT_ADJECTIVES)} {rng.choice(data.PRODUCT_MATERIALS)} {noun}"
        price = float(np.round(np.exp(rng.normal(3.5, 0.8)))) + float(rng.choice([0.99, 0.95, 0.0, 0.49]))
        catalogue.append(Product(str(ids[k]), name, category, round(max(price, 3.99), 2), int(rng.integers(2, 6))))
    retired = [str(x) for x in ids[products:]]

    roles = ("support", "support", "support", "finance", "marketing", "admin", "support", "logistics")
    staff = []
    for k in range(int(rng.integers(5, 9))):
        first = str(rng.choice(data.FIRST_NAMES["de"]))
        last = str(rng.choice(data.LAST_NAMES["de"]))
        staff.append(Staff(f"{first}.{last}@{SHOP_DOMAIN}", f"s{2000 + k}", roles[k]))
    return Shop(seed, people, catalogue, staff, residential, datacenter, retired)
