"""Sizes and durations as typed on the command line."""

from __future__ import annotations

import pytest

from daidai.cli._units import format_age, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1234", 1234),
        ("500MB", 500_000_000),
        ("10GiB", 10 * 1024**3),
        ("1.5gb", 1_500_000_000),
        ("2k", 2000),
        ("1KiB", 1024),
        ("7 B", 7),
    ],
)
def test_sizes_are_plain_bytes_or_carry_a_unit(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000), ("2w", 1209600)],
)
def test_durations_carry_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "lots", "10X", "ib", "-5MB"])
def test_a_bad_size_says_what_is_valid(text: str) -> None:
    with pytest.raises(ValueError, match="500MB"):
        parse_size(text)


@pytest.mark.parametrize("text", ["30", "d", "3 years"])
def test_a_duration_without_unit_is_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="30d"):
        parse_duration(text)


def test_sizes_and_ages_read_well() -> None:
    assert format_size(12) == "12 B"
    assert format_size(1_536_000) == "1.5 MB"
    assert format_age(1000.0, now=1000.0 + 3 * 3600) == "3 hours ago"
    assert format_age(0) == "never"
