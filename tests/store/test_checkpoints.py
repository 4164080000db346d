"""Checkpoints saved together are saved atomically, on both databases."""

from __future__ import annotations

import pytest

from shopwatch.errors import StoreError
from shopwatch.store import Store


def test_checkpoints_saved_together_replace_each_other_at_once(store: Store) -> None:
    store.save_checkpoints({"engine": b"state-1", "offsets:tail": b'{"line": 10}'})
    store.save_checkpoints({"engine": b"state-2", "offsets:tail": b'{"line": 25}'})
    assert store.load_checkpoint("engine") == b"state-2"
    assert store.load_checkpoint("offsets:tail") == b'{"line": 25}'
    store.save_checkpoints({})  # nothing to save is not an error
    assert store.load_checkpoint("engine") == b"state-2"


def test_a_failing_checkpoint_saves_none_of_its_companions(store: Store) -> None:
    store.save_checkpoints({"engine": b"state-1", "offsets:tail": b'{"line": 10}'})
    with pytest.raises(StoreError, match="save a checkpoint"):
        # The second row has no name (NOT NULL): the first must not be saved without it.
        store.save_checkpoints({"engine": b"state-2", None: b'{"line": 25}'})  # type: ignore[dict-item]
    assert store.load_checkpoint("engine") == b"state-1"
    assert store.load_checkpoint("offsets:tail") == b'{"line": 10}'
