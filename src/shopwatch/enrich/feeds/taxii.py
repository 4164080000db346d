"""A TAXII 2.1 client: discovery → API root → collection → objects, page by page.

``url`` may point at the discovery endpoint (``/taxii2/``), an API root, or a collection.
From a discovery document the ``default`` API root is used (else the first listed); from
an API root, the collection named by ``collection`` (its id or title), else the first one
that can be read. Objects are asked for with ``match[type]=indicator`` and, after the first
poll, ``added_after`` (the newest ``X-TAXII-Date-Added-Last`` seen), following ``more`` /
``next`` until the server says there is no more. Every request sends
``Accept: application/taxii+json;version=2.1``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urljoin

import httpx

from shopwatch.enrich.feeds.base import FeedFetchError

__all__ = ["TAXII_MEDIA_TYPE", "TaxiiPoll", "poll_collection"]

TAXII_MEDIA_TYPE: Final = "application/taxii+json;version=2.1"
_MAX_PAGES: Final = 10_000


@dataclass(slots=True)
class TaxiiPoll:
    """What one poll of a collection gave: objects in order, and where to resume."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    added_last: str | None = None
    collection_url: str = ""
    pages: int = 0


def _get(
    client: httpx.Client, url: str, params: dict[str, str] | None, deadline: float
) -> tuple[Any, httpx.Headers]:
    if time.monotonic() > deadline:
        raise FeedFetchError("timeout", f"TAXII poll of {url} ran past its time limit")
    try:
        response = client.get(url, params=params, headers={"Accept": TAXII_MEDIA_TYPE})
    except httpx.TimeoutException as err:
        raise FeedFetchError("timeout", f"TAXII request to {url} timed out: {err}") from err
    except httpx.TransportError as err:
        raise FeedFetchError("unreachable", f"TAXII server at {url} unreachable: {err}") from err
    if response.status_code != 200:
        raise FeedFetchError(
            "http_status", f"TAXII request to {url} answered {response.status_code}"
        )
    media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in ("application/taxii+json", "application/json", "application/stix+json"):
        raise FeedFetchError(
            "malformed", f"TAXII response from {url} is {media or 'untyped'}, not TAXII JSON"
        )
    try:
        return json.loads(response.content), response.headers
    except ValueError as err:
        raise FeedFetchError("malformed", f"TAXII response from {url} is not JSON: {err}") from err


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _collection_url(client: httpx.Client, url: str, collection: str | None, deadline: float) -> str:
    """Resolve ``url`` (discovery, API root or collection) to a collection URL."""
    data, _ = _get(client, url, None, deadline)
    if not isinstance(data, dict):
        raise FeedFetchError("malformed", f"TAXII document at {url} is not an object")
    if "api_roots" in data or "default" in data:  # discovery
        roots = list(data.get("api_roots") or [])
        root = data.get("default") or (roots[0] if roots else None)
        if not isinstance(root, str):
            raise FeedFetchError("malformed", f"TAXII discovery at {url} lists no API root")
        url = _slash(urljoin(url, root))
        data, _ = _get(client, url, None, deadline)
        if not isinstance(data, dict):
            raise FeedFetchError("malformed", f"TAXII API root at {url} is not an object")
    if "can_read" in data and "id" in data:  # already a collection
        return _slash(url)
    collections_url = _slash(urljoin(_slash(url), "collections/"))
    listing, _ = _get(client, collections_url, None, deadline)
    found = listing.get("collections") if isinstance(listing, dict) else None
    if not isinstance(found, list) or not found:
        raise FeedFetchError("malformed", f"TAXII API root {url} has no collections")
    for item in found:
        if not isinstance(item, dict) or not item.get("can_read", False):
            continue
        if collection is None or collection in (item.get("id"), item.get("title")):
            return _slash(urljoin(collections_url, str(item["id"])))
    wanted = f"collection {collection!r}" if collection else "a readable collection"
    raise FeedFetchError("malformed", f"TAXII API root {url} has no {wanted}")


def poll_collection(
    client: httpx.Client,
    url: str,
    *,
    collection: str | None = None,
    added_after: str | None = None,
    time_limit_s: float = 60.0,
) -> TaxiiPoll:
    """Every indicator object added to the collection after ``added_after``.

    ``client`` carries the timeouts and credentials. Raises :class:`FeedFetchError` when
    the server cannot be reached, answers an error, or sends something that is not TAXII.
    """
    deadline = time.monotonic() + time_limit_s
    target = _collection_url(client, url, collection, deadline)
    objects_url = target + "objects/"
    poll = TaxiiPoll(collection_url=target, added_last=added_after)
    params: dict[str, str] = {"match[type]": "indicator"}
    if added_after:
        params["added_after"] = added_after
    for _ in range(_MAX_PAGES):
        data, headers = _get(client, objects_url, params, deadline)
        poll.pages += 1
        if not isinstance(data, dict):
            raise FeedFetchError("malformed", f"TAXII envelope from {objects_url} is not an object")
        page = data.get("objects") or []
        if not isinstance(page, list):
            raise FeedFetchError(
                "malformed", f"TAXII envelope from {objects_url} has no object list"
            )
        poll.objects.extend(page)
        last = headers.get("X-TAXII-Date-Added-Last")
        if last and (poll.added_last is None or last > poll.added_last):
            poll.added_last = last
        if not data.get("more"):
            return poll
        following = data.get("next")
        if following:
            params = {**params, "next": str(following)}
        elif last:  # servers without ``next`` page by date
            params = {**params, "added_after": last}
        else:
            raise FeedFetchError(
                "malformed", f"TAXII envelope from {objects_url} says more but gives no next"
            )
    raise FeedFetchError(
        "malformed", f"TAXII collection {target} gave more than {_MAX_PAGES} pages"
    )
