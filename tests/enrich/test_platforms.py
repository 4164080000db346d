"""Platform files: the shipped ones load, and a bad one is an error naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopwatch.enrich.platforms import (
    builtin_platforms_dir,
    load_platforms,
    read_platform_file,
    select_platforms,
)
from shopwatch.errors import ConfigError, ContentError

SHIPPED = ("api", "magento", "prestashop", "shopware", "woocommerce")

GOOD = """\
id: acme
name: Acme Shop
status: {401: failure}
logins:
  - name: login form
    path: '^/signin$'
    status: {302: success, 200: failure}
"""


def _file(tmp_path: Path, text: str, name: str = "acme.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> ContentError:
    with pytest.raises(ContentError) as caught:
        read_platform_file(_file(tmp_path, text))
    return caught.value


def test_shipped_platforms_load_without_errors() -> None:
    loaded = load_platforms()
    assert not loaded.errors, loaded.errors
    assert set(loaded.platforms) == set(SHIPPED)
    for platform_id, source in loaded.sources.items():
        assert Path(source) == builtin_platforms_dir() / f"{platform_id}.yaml"


def test_generic_api_is_tried_after_the_named_platforms() -> None:
    order = [p.id for p in select_platforms(load_platforms(), None)]
    assert order[-1] == "api"
    assert sorted(order) == sorted(SHIPPED)


def test_a_good_file_reads_with_shared_status_under_its_own(tmp_path: Path) -> None:
    platform = read_platform_file(_file(tmp_path, GOOD))
    (endpoint,) = platform.logins
    assert endpoint.method == ["POST"]
    assert platform.readings(endpoint) == {"401": "failure", "302": "success", "200": "failure"}


def test_a_misspelt_key_names_file_line_and_the_known_keys(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace("    status: {302", "    staus: {302"))
    assert err.where == f"{tmp_path / 'acme.yaml'}:7"
    assert "logins.0.staus" in str(err) and "unknown key 'staus'" in str(err)
    assert "known keys: name, method, path" in str(err)


FOLLOW_UP_90S = (
    "    follow_up:\n      within: 90s\n      rules: [{path: '^/s$', outcome: failure}]\n"
)
UNUSED_FOLLOW_UP = "    follow_up: {rules: [{path: '^/signin$', outcome: failure}]}\n"

#: A bad file as a change to GOOD (old text, new text), the line named, a part of the message.
BAD = {
    "regex-polars-refuses": (("'^/signin$'", "'^/sign(?!up)'"), 6, "look-around"),
    "status-neither-code-nor-class": (
        ("302: success", "3x2: success"),
        7,
        "'3x2' is neither a code",
    ),
    "unknown-reading": (
        ("200: failure}", "200: failed}"),
        7,
        "'success', 'failure', 'unknown', 'throttled' or 'follow_up'",
    ),
    "follow-up-without-its-section": (
        ("302: success", "302: follow_up"),
        5,
        "reads a status as follow_up but has no follow_up section",
    ),
    "follow-up-section-no-status-uses": (
        ("status: {302: success, 200: failure}\n", "status: {302: success}\n" + UNUSED_FOLLOW_UP),
        5,
        "has a follow_up section but no status reads as follow_up",
    ),
    "follow-up-wait-over-a-minute": (
        ("302: success, 200: failure}\n", "302: follow_up}\n" + FOLLOW_UP_90S),
        9,
        "at most 60s",
    ),
    "not-a-login-reading-a-status": (
        ("    status: {302", "    is_login: false\n    status: {302"),
        5,
        "is not a login: it reads no status",
    ),
    "platform-id-with-capitals": (("id: acme", "id: Acme"), 1, "should match pattern"),
    "shared-status-reading-follow-up": (
        ("{401: failure}", "{401: follow_up}"),
        3,
        "belongs to an endpoint",
    ),
    "method-in-lower-case": (
        ("    path: '^/signin$'", "    method: post\n    path: '^/signin$'"),
        6,
        "should match pattern",
    ),
}


@pytest.mark.parametrize(("change", "line", "said"), list(BAD.values()), ids=list(BAD))
def test_a_bad_file_is_an_error_at_its_line(
    tmp_path: Path, change: tuple[str, str], line: int, said: str
) -> None:
    old, new = change
    assert old in GOOD
    err = _error(tmp_path, GOOD.replace(old, new))
    assert err.where == f"{tmp_path / 'acme.yaml'}:{line}"
    assert said in str(err)


def test_not_yaml_names_the_line(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace("name: login form", "name: [login form"))
    assert "not valid YAML" in str(err)
    assert err.where.startswith(str(tmp_path / "acme.yaml") + ":")


def test_a_list_instead_of_a_mapping_is_an_error(tmp_path: Path) -> None:
    err = _error(tmp_path, "- id: acme\n")
    assert "a platform file is a mapping" in str(err)


def test_user_files_overlay_ours_by_id_and_a_bad_one_is_skipped(tmp_path: Path) -> None:
    _file(tmp_path, GOOD)
    _file(
        tmp_path,
        GOOD.replace("id: acme", "id: api").replace("'^/signin$'", "'^/v9/login$'"),
        "api.yaml",
    )
    _file(
        tmp_path,
        GOOD.replace("id: acme", "id: broken").replace("name: login", "nme: login"),
        "broken.yaml",
    )
    loaded = load_platforms([tmp_path])
    assert {"acme", *SHIPPED} == set(loaded.platforms)
    assert loaded.platforms["api"].logins[0].path == "^/v9/login$"
    assert loaded.sources["api"] == str(tmp_path / "api.yaml")
    (problem,) = loaded.errors
    assert problem.where == f"{tmp_path / 'broken.yaml'}:5"


def test_a_missing_folder_is_reported(tmp_path: Path) -> None:
    loaded = load_platforms([tmp_path / "nowhere"])
    assert [e.where for e in loaded.errors] == [str(tmp_path / "nowhere")]
    assert set(loaded.platforms) == set(SHIPPED)


def test_selecting_an_unknown_platform_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown platforms \['shopify'\]; known: api, magento"):
        select_platforms(load_platforms(), ["magento", "shopify"])


def test_selection_keeps_the_trying_order_and_none_means_none() -> None:
    loaded = load_platforms()
    assert [p.id for p in select_platforms(loaded, ["api", "woocommerce"])] == [
        "woocommerce",
        "api",
    ]
    assert select_platforms(loaded, []) == []
