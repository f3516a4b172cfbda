"""Errors raised while decoding events and replaying feeds."""

from __future__ import annotations


class StreamsError(Exception):
    """Root of every streams error."""


class EventError(StreamsError):
    """An event failed validation. ``code`` is a bounded reason for metrics and headers."""

    def __init__(self, code: str, field: str | None, value: object, reason: str) -> None:
        where = f'field "{field}" is {_show(value)}: ' if field else ""
        super().__init__(f"{where}{reason}")
        self.code = code
        self.field = field
        self.value = value
        self.reason = reason


class FeedError(StreamsError):
    """A replay file has a bad row; the message names file and line."""


class SettingsError(StreamsError):
    """A setting has an invalid value; the message names the setting, never a secret."""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
