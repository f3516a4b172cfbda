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


def unreadable(exc: BaseException, field: str | None = None) -> EventError:
    """An unexpected exception while decoding or validating one message, as an
    ``EventError`` with the bounded reason ``unreadable`` (the exception's type and text
    say what happened), so it is dead-lettered like any other bad input."""
    where = f"{field}: " if field else ""
    return EventError("unreadable", None, None, f"{where}{type(exc).__name__}: {_clip(str(exc))}")


class FeedError(StreamsError):
    """A replay file has a bad row; the message names file and line."""


class SettingsError(StreamsError):
    """A setting has an invalid value; the message names the setting, never a secret."""


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: object) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int past sys.get_int_max_str_digits
        text = f"<{type(value).__name__} too long to show>"
    return text if len(text) <= 80 else text[:77] + "..."
