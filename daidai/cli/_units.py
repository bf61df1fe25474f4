"""Sizes and durations as people type them (`500MB`, `10GiB`, `12h`, `30d`)."""

from __future__ import annotations

import re
import time

__all__ = ["format_age", "format_size", "parse_duration", "parse_size"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    """Bytes from `1234`, `500MB`, `1.5GB` (powers of 1000) or `10GiB` (powers of 1024).

    Raises:
        ValueError: the text is not a size; the message shows valid forms.
    """
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit.startswith("i"):
        raise ValueError(f"{text!r} is not a size; use bytes or a unit: 500MB, 10GiB")
    prefix = unit[:1] if unit[:1] in _POWERS else ""
    base = 1024 if "i" in unit else 1000
    return int(float(match.group(1)) * base ** _POWERS[prefix])


def parse_duration(text: str) -> float:
    """Seconds from `90s`, `15m`, `12h`, `30d` or `2w`.

    Raises:
        ValueError: the text has no unit or an unknown one.
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; use a number and a unit: 12h, 30d")
    return float(match.group(1)) * _SECONDS[match.group(2).lower()]


def format_size(size: float) -> str:
    """`1.5 MB`-style text (powers of 1000, as `du --si` and most file managers)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def format_age(timestamp: float, *, now: float | None = None) -> str:
    """`3 minutes ago`-style text; `never` for 0."""
    if timestamp <= 0:
        return "never"
    seconds = max(0.0, (time.time() if now is None else now) - timestamp)
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = int(seconds // length)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"
