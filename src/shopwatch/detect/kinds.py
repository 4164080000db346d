"""Imports every module that registers a detector kind (the registry is filled on import)."""

from shopwatch.detect import (
    entity,  # noqa: F401
    forms,  # noqa: F401
    intel,  # noqa: F401
    metrics,  # noqa: F401
    multivariate,  # noqa: F401
    payments,  # noqa: F401
    requests,  # noqa: F401
    sequence,  # noqa: F401
    threshold,  # noqa: F401
    travel,  # noqa: F401
    vendor_calls,  # noqa: F401
    vendors,  # noqa: F401
)
