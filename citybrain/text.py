"""Wording shared by every command's output."""

from __future__ import annotations

from datetime import datetime


def counted(n: int, noun: str, plural: str = "") -> str:
    """``1 row``, ``2 rows``, ``1,234 rows``: a count with its noun in the right number
    (``plural`` for a noun that does not just take an s)."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {plural or noun + 's'}"


def agreeing(n: int, singular: str, plural: str) -> str:
    """The word that agrees with a count of ``n``: ``agreeing(1, "was", "were")`` is
    ``was``, any other count ``were`` (for the verb after ``counted``)."""
    return singular if n == 1 else plural


def day(when: datetime) -> str:
    """``0001-01-01``: a date with its year in four digits (``%Y`` gives ``1`` for year 1
    on glibc)."""
    return f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
