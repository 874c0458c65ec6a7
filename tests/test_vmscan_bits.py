"""vmscan's search for the next page-cache page of a pageblock, on its bitmap as bytes.

``_first_set(buf, at)`` must pick what the integer formula ``shrink_zone`` used before
picked: the lowest set bit at or after ``at``, else the lowest set bit of all, else none.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from framework.kernel.consts import PAGEBLOCK_NR_PAGES
from framework.kernel.vmscan import _first_set


def reference(bits: int, at: int) -> int:
    """The 512-bit integer formula: ``bits >> at``'s lowest set bit, or wrap to the lowest."""
    if not bits:
        return -1
    high = bits >> at
    return at + (high & -high).bit_length() - 1 if high else (bits & -bits).bit_length() - 1


def as_bytes(bits: int) -> bytearray:
    return bytearray(bits.to_bytes(PAGEBLOCK_NR_PAGES // 8, "little"))


@given(bits=st.integers(0, (1 << PAGEBLOCK_NR_PAGES) - 1),
       at=st.integers(0, PAGEBLOCK_NR_PAGES - 1))
def test_first_set_matches_the_integer_formula(bits: int, at: int) -> None:
    assert _first_set(as_bytes(bits), at) == reference(bits, at)


def test_first_set_by_hand() -> None:
    """Bits 3 and 300 set: from 0 -> 3; from 4 -> 300 (byte 37, bit 4); from 301 -> wraps to
    3; bit 300 alone from 300 -> 300 (the same byte, at its own bit); nothing set -> -1."""
    two = as_bytes((1 << 3) | (1 << 300))
    assert [_first_set(two, at) for at in (0, 4, 301)] == [3, 300, 3]
    assert _first_set(as_bytes(1 << 300), 300) == 300
    assert _first_set(as_bytes(0), 17) == -1
