"""store stage: alerts, incidents, decisions, feedback and checkpoints in SQLite or PostgreSQL.

Use ``Store.open(url)`` to get a migrated store; ``Store(url)`` alone does not migrate:

>>> store = Store("sqlite://")   # in memory; a file or a PostgreSQL URL in real use
>>> store.revision() is None, head_revision()
(True, '0001')
>>> store.close()
"""

from shopwatch.errors import StoreError
from shopwatch.store.migrate import head_revision
from shopwatch.store.store import Store, mask_url

__all__ = ["Store", "StoreError", "head_revision", "mask_url"]
