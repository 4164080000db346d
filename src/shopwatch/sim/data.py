"""Static tables the simulator draws from: address ranges, user agents, names, paths, payloads.

The address ranges are real allocations (checked against the offline geo/ASN tables the
enricher ships with): residential ISPs per country for customers, hosting providers for
attackers, and the published crawler ranges of Google and Microsoft. Nothing here is
fetched at run time.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BROWSER_UAS",
    "CATEGORIES",
    "COUNTRIES",
    "CRAWLER_RANGES",
    "DATACENTER_RANGES",
    "DECLINES_CARD_TESTING",
    "DECLINES_CUSTOMER",
    "EMAIL_DOMAINS",
    "FIRST_NAMES",
    "LAST_NAMES",
    "LEAKED_EMAIL_DOMAINS",
    "PRODUCT_ADJECTIVES",
    "PRODUCT_MATERIALS",
    "RESIDENTIAL_RANGES",
    "REVIEWS",
    "SCANNER_PATHS",
    "SCANNER_UAS",
    "SCRAPER_UAS",
    "SQLI_PAYLOADS",
    "SSH_USERNAMES",
    "STALE_BROWSER_UAS",
    "XSS_PAYLOADS",
]

#: Country -> (market weight, UTC offset in hours (standard time), currency, name group).
COUNTRIES: Final[dict[str, tuple[float, int, str, str]]] = {
    "DE": (30.0, 1, "EUR", "de"),
    "AT": (6.0, 1, "EUR", "de"),
    "CH": (5.0, 1, "CHF", "de"),
    "NL": (6.0, 1, "EUR", "nl"),
    "BE": (3.0, 1, "EUR", "nl"),
    "FR": (9.0, 1, "EUR", "fr"),
    "GB": (10.0, 0, "GBP", "en"),
    "IT": (5.0, 1, "EUR", "it"),
    "ES": (4.0, 1, "EUR", "es"),
    "PL": (4.0, 1, "PLN", "pl"),
    "SE": (3.0, 1, "SEK", "sv"),
    "DK": (2.0, 1, "DKK", "sv"),
    "US": (9.0, -5, "USD", "en"),
    "CA": (2.0, -5, "CAD", "en"),
    "AU": (1.0, 10, "AUD", "en"),
}

#: Residential and mobile ISP ranges per country: (country, ASN, holder, CIDR).
RESIDENTIAL_RANGES: Final[tuple[tuple[str, int, str, str], ...]] = (
    ("US", 7922, "Comcast Cable Communications, LLC", "73.0.0.0/8"),
    ("US", 7922, "Comcast Cable Communications, LLC", "98.192.0.0/10"),
    ("US", 7922, "Comcast Cable Communications, LLC", "67.160.0.0/11"),
    ("US", 10796, "Charter Communications Inc", "74.136.0.0/14"),
    ("US", 22394, "Verizon Business", "97.32.0.0/11"),
    ("US", 7018, "AT&T Enterprises, LLC", "108.192.0.0/11"),
    ("US", 7018, "AT&T Enterprises, LLC", "99.48.0.0/12"),
    ("DE", 3320, "Deutsche Telekom AG", "79.192.0.0/10"),
    ("DE", 3320, "Deutsche Telekom AG", "84.128.0.0/10"),
    ("DE", 3320, "Deutsche Telekom AG", "93.192.0.0/10"),
    ("DE", 3320, "Deutsche Telekom AG", "91.32.0.0/11"),
    ("DE", 3209, "Vodafone GmbH", "188.96.0.0/13"),
    ("DE", 3209, "Vodafone GmbH", "88.64.0.0/13"),
    ("DE", 3209, "Vodafone GmbH", "178.0.0.0/13"),
    ("DE", 6805, "Telefonica Germany GmbH & Co.OHG", "77.0.0.0/12"),
    ("DE", 6805, "Telefonica Germany GmbH & Co.OHG", "2.208.0.0/13"),
    ("GB", 2856, "British Telecommunications Limited", "86.160.0.0/11"),
    ("GB", 2856, "British Telecommunications Limited", "81.128.0.0/12"),
    ("GB", 5089, "Virgin Media Limited", "81.96.0.0/12"),
    ("GB", 5089, "Virgin Media Limited", "82.0.0.0/13"),
    ("GB", 5607, "Sky UK Limited", "90.192.0.0/12"),
    ("GB", 5607, "Sky UK Limited", "2.120.0.0/13"),
    ("FR", 3215, "Orange S.A.", "86.216.0.0/14"),
    ("FR", 3215, "Orange S.A.", "90.60.0.0/14"),
    ("FR", 12322, "Free SAS", "82.224.0.0/11"),
    ("FR", 12322, "Free SAS", "88.160.0.0/12"),
    ("FR", 15557, "Societe Francaise Du Radiotelephone - SFR SA", "93.0.0.0/11"),
    ("FR", 15557, "Societe Francaise Du Radiotelephone - SFR SA", "109.0.0.0/11"),
    ("NL", 1136, "KPN B.V.", "77.160.0.0/13"),
    ("NL", 1136, "KPN B.V.", "86.80.0.0/13"),
    ("NL", 33915, "Vodafone Libertel B.V.", "83.80.0.0/13"),
    ("NL", 33915, "Vodafone Libertel B.V.", "84.24.0.0/13"),
    ("AT", 8447, "A1 Telekom Austria AG", "91.112.0.0/14"),
    ("AT", 8447, "A1 Telekom Austria AG", "178.188.0.0/14"),
    ("CH", 3303, "Swisscom (Schweiz) AG", "85.0.0.0/13"),
    ("CH", 3303, "Swisscom (Schweiz) AG", "178.192.0.0/13"),
    ("IT", 3269, "Telecom Italia S.p.A.", "88.48.0.0/13"),
    ("IT", 3269, "Telecom Italia S.p.A.", "79.16.0.0/13"),
    ("ES", 3352, "TELEFONICA DE ESPANA S.A.U.", "88.0.0.0/11"),
    ("ES", 3352, "TELEFONICA DE ESPANA S.A.U.", "83.32.0.0/12"),
    ("PL", 5617, "Orange Polska Spolka Akcyjna", "83.8.0.0/13"),
    ("PL", 5617, "Orange Polska Spolka Akcyjna", "83.24.0.0/13"),
    ("SE", 3301, "Telia Company AB", "78.64.0.0/12"),
    ("SE", 3301, "Telia Company AB", "81.224.0.0/12"),
    ("DK", 3292, "TDC Holding A/S", "87.52.0.0/14"),
    ("DK", 3292, "TDC Holding A/S", "80.160.0.0/14"),
    ("CA", 812, "Rogers Communications Canada Inc.", "99.242.0.0/15"),
    ("CA", 577, "Bell Canada", "142.187.0.0/16"),
    ("AU", 1221, "Telstra Limited", "1.128.0.0/11"),
    ("AU", 1221, "Telstra Limited", "101.176.0.0/12"),
    ("BE", 5432, "Proximus NV", "109.128.0.0/12"),
    ("BE", 5432, "Proximus NV", "81.240.0.0/13"),
)

#: Hosting providers (where attack tooling runs): (ASN, holder, CIDR).
DATACENTER_RANGES: Final[tuple[tuple[int, str, str], ...]] = (
    (14061, "DigitalOcean, LLC", "104.236.0.0/16"),
    (14061, "DigitalOcean, LLC", "167.99.0.0/16"),
    (14061, "DigitalOcean, LLC", "159.65.0.0/16"),
    (14061, "DigitalOcean, LLC", "138.68.0.0/16"),
    (16276, "OVH SAS", "51.254.0.0/15"),
    (16276, "OVH SAS", "178.32.0.0/15"),
    (16276, "OVH SAS", "51.75.0.0/16"),
    (24940, "Hetzner Online GmbH", "49.12.0.0/15"),
    (24940, "Hetzner Online GmbH", "95.216.0.0/15"),
    (24940, "Hetzner Online GmbH", "88.198.0.0/16"),
    (14618, "Amazon.com, Inc.", "3.80.0.0/12"),
    (14618, "Amazon.com, Inc.", "18.208.0.0/13"),
    (16509, "Amazon.com, Inc.", "3.120.0.0/14"),
    (20473, "The Constant Company, LLC", "45.32.0.0/16"),
    (20473, "The Constant Company, LLC", "45.76.0.0/16"),
    (63949, "Akamai Technologies, Inc.", "172.104.0.0/15"),
    (63949, "Akamai Technologies, Inc.", "139.162.0.0/16"),
    (51167, "Contabo GmbH", "5.189.128.0/18"),
    (51167, "Contabo GmbH", "161.97.64.0/18"),
    (45102, "Hangzhou Alibaba Advertising Co.,Ltd.", "47.74.0.0/15"),
    (132203, "Shenzhen Tencent Computer Systems Company Limited", "43.128.0.0/14"),
    (8075, "Microsoft Corporation", "20.0.0.0/11"),
    (396982, "Google LLC", "34.64.0.0/10"),
    (212238, "Datacamp Limited", "45.134.140.0/22"),
)

#: Published crawler ranges: bot name -> CIDRs (Googlebot, Bingbot).
CRAWLER_RANGES: Final[dict[str, tuple[str, ...]]] = {
    "googlebot": ("66.249.64.0/19",),
    "bingbot": ("157.55.39.0/24", "40.77.167.0/24", "207.46.13.0/24"),
}

#: The crawlers' user agents, as they send them.
CRAWLER_UAS: Final[dict[str, tuple[str, ...]]] = {
    "googlebot": (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/136.0.7103.113 Mobile Safari/537.36 "
        "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Googlebot-Image/1.0",
    ),
    "bingbot": (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
        "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
    ),
}

#: Current browsers: (user agent, weight, is_mobile).
BROWSER_UAS: Final[tuple[tuple[str, float, bool], ...]] = (
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/137.0.0.0 Safari/537.36", 14, False),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36", 9, False),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/135.0.0.0 Safari/537.36", 3, False),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/137.0.0.0 Safari/537.36", 6, False),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36", 3, False),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/137.0.0.0 Safari/537.36", 1, False),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/137.0.0.0 Safari/537.36 Edg/137.0.3296.62", 5, False),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36 Edg/136.0.3240.76", 2, False),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:139.0) Gecko/20100101 Firefox/139.0", 4, False),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:138.0) Gecko/20100101 Firefox/138.0", 2, False),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:139.0) Gecko/20100101 Firefox/139.0", 1, False),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:139.0) Gecko/20100101 Firefox/139.0", 1, False),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:138.0) Gecko/20100101 Firefox/138.0", 0.5, False),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Safari/605.1.15", 5, False),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.4 Safari/605.1.15", 2, False),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15", 1, False),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1", 14, True),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.4 Mobile/15E148 Safari/604.1", 6, True),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1", 2, True),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/137.0.7151.79 Mobile/15E148 Safari/604.1", 2, True),
    ("Mozilla/5.0 (iPad; CPU OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1", 2, True),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/137.0.0.0 Mobile Safari/537.36", 12, True),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Mobile Safari/537.36", 5, True),
    ("Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/28.0 Chrome/130.0.0.0 Mobile Safari/537.36", 3, True),
    ("Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36", 1, True),
    ("Mozilla/5.0 (Android 14; Mobile; rv:139.0) Gecko/139.0 Firefox/139.0", 1, True),
)

#: Browser strings credential-stuffing kits rotate through (real but dated versions).
STALE_BROWSER_UAS: Final[tuple[str, ...]] = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/114.0.5735.199 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:109.0) Gecko/20100101 Firefox/115.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/117.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0.0.0 Safari/537.36 Edg/116.0.1938.69",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/112.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
)

#: Scanner user agents; ``{n}`` is replaced by a test number where the tool sends one.
SCANNER_UAS: Final[dict[str, str]] = {
    "nikto": "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:{n})",
    "nuclei": "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
    "gobuster": "gobuster/3.6",
    "ffuf": "Fuzz Faster U Fool v2.1.0-dev",
    "wpscan": "WPScan v3.8.25 (https://wpscan.com/wordpress-security-scanner)",
    "spoofed": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
}

#: Clients scrapers use: generic HTTP libraries and stale fake browsers.
SCRAPER_UAS: Final[tuple[str, ...]] = (
    "python-requests/2.32.3",
    "Scrapy/2.11.2 (+https://scrapy.org)",
    "Go-http-client/1.1",
    "curl/8.5.0",
    "axios/1.7.2",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/125.0.6422.60 Safari/537.36",
)

CATEGORIES: Final[tuple[str, ...]] = (
    "womens-jackets", "mens-jackets", "womens-shoes", "mens-shoes", "backpacks", "tents",
    "sleeping-bags", "camping-kitchen", "base-layers", "fleece", "trousers", "socks",
    "hats-gloves", "headlamps", "water-bottles", "kids", "accessories", "sale",
)

#: What customers write in a product review. Written to carry what review text carries in
#: the wild: contractions and possessives, heights in feet and inches (5'11"), quoted
#: product and colour names, "--" for a dash, semicolons, "update:" edits, emoticons,
#: percentages, order numbers, HTML a customer pasted; not chosen by what any rule matches.
REVIEWS: Final[tuple[str, ...]] = (
    "Great fit, warm and light. Ordered a size up as recommended.",
    "Arrived quickly, quality is fine for the price.",
    "The zip feels a bit cheap but otherwise I'm happy :)",
    "Perfect for hiking in autumn & spring. Would buy again!",
    "Colour is darker than on the photos - still nice.",
    "Returned it, too small (I'm 1.85 m). Exchange was easy.",
    "I'm 5'11\" and the M fits perfectly -- great jacket.",
    "Colour is 'forest' -- darker than the photos but nice.",
    "Don't buy if you're between sizes; order one up.",
    "100% merino & it doesn't itch :)",
    "Best tent I've owned <3",
    "Rated 5/5 -- the \"storm\" shell kept me dry for 3 days.",
    "It's OK. Not great, not bad; zip is stiff.",
    "Used it on the GR20 (Corsica) - held up fine.",
    "My husband's 2nd pair. He's 6'2 and size 46 fits.",
    "Arrived in 2 days!!! #happy",
    "Is it waterproof or just water-resistant? Mine leaked at the seams.",
    "Good value for money and/or a great gift.",
    "Returned: 1 star. Sole came off after 2 weeks.",
    "The 'ultralight' claim is a joke - 1.2 kg",
    "Fits like a glove; select the smaller size if in doubt.",
    "<b>Warning</b>: runs small",
    "Kids' version is the same quality as the adults'.",
    "Straps are 1\" wide, not 2\" as listed.",
    "I'd say 4 out of 5 -- would be 5 if it had pockets.",
    "Sleeps 2 (or 3 if you're friends).",
    "\"Waterproof\" my foot. Soaked in 10 minutes.",
    "Temperature rating of -5 is optimistic; -2 more like it.",
    "Order #10482 arrived with a tear :(",
    "The hood doesn't fit over a helmet.",
    "O'Neill fans will like this.",
    "Works with my 2L bladder; drop it in and go.",
    "Nice & warm -- wore it at -10°C.",
    "Can't fault it. 10/10.",
    "Lovely jumper; update: after 20 washes still no pilling.",
    "Bought for my daughter's D of E expedition, she loved it.",
    "Wife says it's 'the comfiest thing she owns'.",
    "Size chart is off by one -- I'm usually an L, needed XL.",
    "2 stars; the seam ripped on day 1 & customer service took a week.",
    "Pros: light, packs small. Cons: noisy fabric.",
    "I wear a 10.5 US / 44 EU and the 44 was spot on.",
    "Perfect!!!",
    "Good but not for -20; layer up.",
    "Had the old model for 8 years -- this one's even better.",
    "Delivery to Ireland took 5 days, which is fine.",
    "Mesh pocket is handy for a 1L bottle.",
    "Exactly as described. :-)",
    "Ordered 'sand', got 'stone'. Kept it anyway.",
    "Not as warm as my 800-fill, but half the price.",
    "Zip broke; replacement sent within 48 hrs -- great service.",
    "Update: 6 months on and still going strong.",
    "My son (13) is 5'4\" and wears the S.",
    "Would've liked a 2-way zip.",
    "Love it <3 <3",
    "Fabric is 92% polyester / 8% elastane, feels premium.",
    "Gift for my dad; he says it's 'grand'.",
    "Hmm... the colour fades after a few washes.",
    "Great boots; update: resoled them after 2 years & they're like new.",
    "Used it for the West Highland Way -- 96 miles, no blisters.",
    "Shame about the price, otherwise 5*",
)

PRODUCT_ADJECTIVES: Final[tuple[str, ...]] = (
    "alpine", "trail", "summit", "ridge", "nordic", "coastal", "urban", "classic", "ultralight",
    "thermal", "storm", "glacier", "forest", "canyon", "harbor", "polar", "meadow", "dune",
)
PRODUCT_MATERIALS: Final[tuple[str, ...]] = (
    "merino", "down", "softshell", "gore-tex", "fleece", "ripstop", "canvas", "wool",
    "cotton", "recycled", "bamboo", "nylon",
)

EMAIL_DOMAINS: Final[dict[str, tuple[str, ...]]] = {
    "de": ("gmail.com", "web.de", "gmx.de", "t-online.de", "outlook.de", "icloud.com", "gmx.net", "yahoo.de"),
    "nl": ("gmail.com", "hotmail.com", "outlook.com", "ziggo.nl", "kpnmail.nl", "icloud.com", "live.nl"),
    "fr": ("gmail.com", "orange.fr", "free.fr", "hotmail.fr", "laposte.net", "sfr.fr", "yahoo.fr"),
    "en": ("gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "icloud.com", "btinternet.com", "aol.com"),
    "it": ("gmail.com", "libero.it", "hotmail.it", "virgilio.it", "yahoo.it", "outlook.it"),
    "es": ("gmail.com", "hotmail.es", "yahoo.es", "outlook.es", "telefonica.net"),
    "pl": ("gmail.com", "wp.pl", "onet.pl", "o2.pl", "interia.pl"),
    "sv": ("gmail.com", "hotmail.com", "outlook.com", "telia.com", "live.se"),
}

#: Domains of leaked address lists (credential stuffing targets that are mostly not ours).
LEAKED_EMAIL_DOMAINS: Final[tuple[str, ...]] = (
    "gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com", "mail.ru", "gmx.de",
    "web.de", "yandex.ru", "icloud.com", "live.com", "orange.fr", "btinternet.com",
)

FIRST_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "de": ("lukas", "anna", "jonas", "lea", "leon", "hannah", "felix", "laura", "paul", "sophie",
           "maximilian", "julia", "tobias", "katharina", "jan", "lena", "stefan", "sabine",
           "michael", "andrea", "thomas", "claudia", "florian", "nina", "markus", "sarah"),
    "nl": ("daan", "emma", "sem", "julia", "lucas", "mila", "finn", "tess", "levi", "sophie",
           "bram", "anouk", "thijs", "lotte", "ruben", "femke", "jeroen", "sanne"),
    "fr": ("louis", "emma", "gabriel", "jade", "raphael", "louise", "arthur", "alice", "hugo",
           "chloe", "lucas", "camille", "nicolas", "manon", "julien", "claire", "thomas", "lea"),
    "en": ("oliver", "olivia", "james", "emily", "william", "sophia", "jack", "amelia", "harry",
           "isla", "michael", "jessica", "daniel", "sarah", "matthew", "ashley", "david", "emma",
           "chris", "laura", "john", "megan", "ryan", "hannah"),
    "it": ("leonardo", "sofia", "francesco", "giulia", "alessandro", "aurora", "lorenzo",
           "ginevra", "marco", "chiara", "matteo", "francesca", "luca", "elena"),
    "es": ("hugo", "lucia", "martin", "sofia", "pablo", "maria", "alejandro", "paula", "daniel",
           "carmen", "javier", "laura", "diego", "elena"),
    "pl": ("jakub", "zuzanna", "antoni", "julia", "jan", "maja", "szymon", "hanna", "piotr",
           "anna", "tomasz", "katarzyna", "pawel", "agnieszka"),
    "sv": ("william", "alice", "liam", "maja", "noah", "elsa", "hugo", "astrid", "erik", "ingrid",
           "lars", "freja", "magnus", "sofie", "anders", "karin"),
}

LAST_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "de": ("mueller", "schmidt", "schneider", "fischer", "weber", "meyer", "wagner", "becker",
           "schulz", "hoffmann", "koch", "richter", "klein", "wolf", "neumann", "schwarz",
           "zimmermann", "braun", "krueger", "hartmann", "lange", "werner", "krause", "lehmann"),
    "nl": ("de-jong", "jansen", "de-vries", "van-dijk", "bakker", "janssen", "visser", "smit",
           "meijer", "de-boer", "mulder", "de-groot", "bos", "vos", "peters", "hendriks"),
    "fr": ("martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand",
           "leroy", "moreau", "simon", "laurent", "lefebvre", "michel", "garcia", "roux"),
    "en": ("smith", "jones", "williams", "taylor", "brown", "davies", "evans", "wilson",
           "johnson", "miller", "davis", "thomas", "roberts", "walker", "wright", "thompson",
           "white", "hughes", "edwards", "green", "hall", "wood", "harris", "clarke"),
    "it": ("rossi", "russo", "ferrari", "esposito", "bianchi", "romano", "colombo", "ricci",
           "marino", "greco", "bruno", "gallo", "conti", "costa"),
    "es": ("garcia", "rodriguez", "gonzalez", "fernandez", "lopez", "martinez", "sanchez",
           "perez", "gomez", "martin", "jimenez", "ruiz", "hernandez", "diaz"),
    "pl": ("nowak", "kowalski", "wisniewski", "wojcik", "kowalczyk", "kaminski", "lewandowski",
           "zielinski", "szymanski", "wozniak", "dabrowski", "kozlowski"),
    "sv": ("andersson", "johansson", "karlsson", "nilsson", "eriksson", "larsson", "olsson",
           "persson", "svensson", "gustafsson", "hansen", "jensen", "nielsen", "pedersen"),
}

#: Declines of real customers' payments: (code, weight).
DECLINES_CUSTOMER: Final[tuple[tuple[str, float], ...]] = (
    ("insufficient_funds", 34), ("do_not_honor", 22), ("incorrect_cvc", 14),
    ("expired_card", 10), ("generic_decline", 10), ("card_velocity_exceeded", 4),
    ("invalid_number", 3), ("authentication_required", 3),
)

#: Declines seen when stolen or generated cards are tested: (code, weight).
DECLINES_CARD_TESTING: Final[tuple[tuple[str, float], ...]] = (
    ("incorrect_cvc", 30), ("invalid_number", 22), ("do_not_honor", 18), ("stolen_card", 8),
    ("expired_card", 8), ("lost_card", 5), ("generic_decline", 6), ("insufficient_funds", 3),
)

#: Paths a vulnerability scanner asks for (secrets, admin consoles, backups, traversal).
SCANNER_PATHS: Final[tuple[str, ...]] = (
    "/.env", "/.env.bak", "/.env.production", "/.env.local", "/.git/config", "/.git/HEAD",
    "/.svn/entries", "/.hg/store", "/.DS_Store", "/.htaccess", "/.htpasswd", "/.aws/credentials",
    "/.ssh/id_rsa", "/.docker/config.json", "/.npmrc", "/.vscode/sftp.json", "/wp-admin/",
    "/wp-login.php", "/wp-config.php.bak", "/wp-admin/install.php", "/xmlrpc.php",
    "/wp-content/plugins/", "/phpmyadmin/", "/phpMyAdmin/index.php", "/pma/", "/myadmin/",
    "/mysqladmin/", "/server-status", "/server-info", "/actuator/env", "/actuator/health",
    "/actuator/heapdump", "/cgi-bin/test-cgi", "/cgi-bin/luci", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/solr/admin/info/system", "/jmx-console/", "/manager/html", "/_ignition/execute-solution",
    "/telescope/requests", "/boaform/admin/formLogin", "/HNAP1/", "/console/", "/debug/",
    "/backup.zip", "/backup.sql", "/backup.tar.gz", "/dump.sql", "/db.sql", "/database.sql",
    "/site.tar.gz", "/www.zip", "/config.php", "/config.php.bak", "/config.json", "/config.yml",
    "/web.config", "/app/etc/env.php", "/admin.php", "/phpinfo.php", "/info.php", "/test.php",
    "/shell.php", "/install.php", "/setup.php", "/index.php.bak", "/index.php~", "/.well-known/security.txt",
    "/admin/", "/administrator/", "/admin/login", "/login.jsp", "/api/swagger.json", "/swagger-ui.html",
    "/v2/api-docs", "/graphql", "/api/v1/users", "/druid/index.html", "/owa/auth/logon.aspx",
    "/remote/login", "/global-protect/login.esp", "/sdk", "/webui/", "/geoserver/web/",
    "/.well-known/acme-challenge/../../etc/passwd", "/static/../../../../etc/passwd",
    "/cgi-bin/.%2e/.%2e/.%2e/.%2e/etc/passwd", "/index.php?page=../../../../etc/passwd",
    "/download?file=..%2F..%2F..%2F..%2Fetc%2Fpasswd", "/scripts/..%c0%af../winnt/system32/cmd.exe?/c+dir",
    "/_vti_bin/shtml.dll", "/iisadmin/", "/msadc/msadcs.dll", "/default.ida", "/etc/passwd",
    "/config.inc", "/settings.py", "/credentials.json", "/secrets.yml", "/id_rsa", "/server.key",
    "/robots.txt", "/sitemap.xml", "/crossdomain.xml", "/clientaccesspolicy.xml",
)

#: SQL injection payloads as tools send them (percent-encoded query values).
SQLI_PAYLOADS: Final[tuple[str, ...]] = (
    "%27", "%27%20OR%201%3D1--", "%27%20OR%20%271%27%3D%271", "1%27%20AND%201%3D1--%20-",
    "1%20AND%201%3D2", "1%27%20ORDER%20BY%2010--%20-", "-1%20UNION%20SELECT%20NULL%2CNULL%2CNULL--",
    "1%27%20UNION%20ALL%20SELECT%20NULL%2Cversion()%2CNULL--%20-",
    "%27%20UNION%20SELECT%20username%2Cpassword%20FROM%20users--",
    "1%27%20AND%20SLEEP(5)--%20-", "1)%20AND%20(SELECT%201%20FROM%20(SELECT(SLEEP(5)))a)--",
    "1%3BSELECT%20pg_sleep(5)--", "1%27%3B%20WAITFOR%20DELAY%20%270%3A0%3A5%27--",
    "1%20AND%20extractvalue(1%2Cconcat(0x7e%2C(SELECT%20%40%40version)))",
    "1%27%20AND%20(SELECT%20COUNT(*)%20FROM%20information_schema.tables)%3E0--%20-",
    "%22%20OR%20%22%22%3D%22", "admin%27--", "1%27%20OR%20%27x%27%3D%27x",
    "1%20OR%20SLEEP(5)%23", "%27)%20OR%20(%271%27%3D%271",
)

#: Cross-site scripting payloads (percent-encoded, or raw as some tools send them).
XSS_PAYLOADS: Final[tuple[str, ...]] = (
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E", "%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E",
    "%22%3E%3Cscript%3Ealert(%27XSS%27)%3C%2Fscript%3E", "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
    "%3Csvg%2Fonload%3Dalert(1)%3E", "%22%20onmouseover%3D%22alert(1)",
    "javascript%3Aalert(1)", "%3Ciframe%20src%3D%22javascript%3Aalert(1)%22%3E",
    "%27%3E%3Cbody%20onload%3Dalert(1)%3E", "%3Cdetails%20open%20ontoggle%3Dalert(1)%3E",
    "%3CScRiPt%3Eprompt(1)%3C%2FsCrIpT%3E", "%3Cimg%20src%3D1%20onerror%3Dconfirm(document.domain)%3E",
)

#: User names internet SSH brute forcers cycle through.
SSH_USERNAMES: Final[tuple[str, ...]] = (
    "root", "admin", "test", "user", "oracle", "postgres", "ubuntu", "ftpuser", "git", "guest",
    "pi", "deploy", "jenkins", "hadoop", "mysql", "support", "dev", "ansible", "minecraft",
    "steam", "tomcat", "nagios", "centos", "debian", "ec2-user", "user1", "test1",
    "administrator", "sysadmin", "vagrant", "elastic", "redis", "docker", "teamspeak", "zabbix",
    "apache", "nginx", "backup", "operator", "odoo", "sol", "solana", "es", "validator", "www",
    "web", "demo", "student", "testuser", "server",
)
