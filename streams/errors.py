"""Errors raised while decoding events and replaying feeds."""

from __future__ import annotations

import reprlib


class StreamsError(Exception):
    """Root of every streams error."""


class _Missing:
    """The value of a field an event leaves out (``MISSING``), told apart from JSON null."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: object = _Missing()


class EventError(StreamsError):
    """An event failed validation. ``code`` is a bounded reason for metrics and headers;
    ``value`` is the field's value, ``MISSING`` (or None with ``missing_field``) when the
    event leaves the field out. The message reads ``field "ts" is 'x': reason`` or
    ``field "ts" is missing[: reason]``."""

    def __init__(self, code: str, field: str | None, value: object, reason: str) -> None:
        if field and (value is MISSING or (code == "missing_field" and value is None)):
            said = reason in ("field is missing", "")
            text = f'field "{field}" is missing' + ("" if said else f": {reason}")
        else:
            text = (f'field "{field}" is {show(value)}: ' if field else "") + reason
        super().__init__(text)
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


# A list or object is shown a few levels and items deep: repr() of a JSON array nested
# 1,000 levels deep (under the decoders' 1,024) raised RecursionError, and one of a
# megabyte-long list built the whole text to show 80 characters of it.
_CONTAINERS = reprlib.Repr()
_CONTAINERS.maxlevel = 3
_CONTAINERS.maxlist = _CONTAINERS.maxdict = 6
_CONTAINERS.maxstring = _CONTAINERS.maxother = 40


def show(value: object) -> str:
    """A field's value as the producer wrote it: JSON's null/true/false, else repr (a
    list or object a few levels deep), at most 80 characters."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    try:
        text = _CONTAINERS.repr(value) if isinstance(value, list | dict) else repr(value)
    except ValueError:  # an int past sys.get_int_max_str_digits
        text = f"<{type(value).__name__} too long to show>"
    except RecursionError:
        text = f"<{type(value).__name__} nested too deeply to show>"
    return text if len(text) <= 80 else text[:77] + "..."
