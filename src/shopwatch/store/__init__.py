"""store stage: alerts, incidents, decisions, feedback and checkpoints in SQLite or PostgreSQL.

>>> store = Store.open("sqlite://")   # in memory; a file or PostgreSQL URL in real use
>>> store.revision() == head_revision()
True
>>> store.close()
"""

from shopwatch.errors import StoreError
from shopwatch.store.migrate import head_revision
from shopwatch.store.store import Store, mask_url

__all__ = ["Store", "StoreError", "head_revision", "mask_url"]
