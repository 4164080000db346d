"""The one exception tree. Bad input is data (see ``parse.Reject``), never an exception."""

from __future__ import annotations

__all__ = [
    "BusError",
    "ConfigError",
    "ContentError",
    "RegistryError",
    "ShopwatchError",
    "StoreError",
]


class ShopwatchError(Exception):
    """Root of every error shopwatch raises on purpose."""


class ConfigError(ShopwatchError):
    """Raised when settings, a config file or a command line cannot be used as given."""


class ContentError(ShopwatchError):
    """Raised when a rule, playbook or feed file is invalid; ``where`` names file:line."""

    def __init__(self, message: str, where: str = "") -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class RegistryError(ShopwatchError):
    """Raised when two detector kinds, formats or sources claim the same name."""


class StoreError(ShopwatchError):
    """Raised when the database cannot be reached, migrated or written."""


class BusError(ShopwatchError):
    """Raised when the event bus cannot be reached or refuses a message."""
