"""The subsets of an image's components that are removed: one dual image and text each.

Shared by inpaint, rewrite and filter without importing any stage (and its libraries)."""

from __future__ import annotations

from itertools import combinations


def nonempty_subsets(indices: list[int]) -> list[tuple[int, ...]]:
    """All 2^k-1 non-empty subsets, smallest first, each sorted (the power set minus {})."""
    return [subset for size in range(1, len(indices) + 1) for subset in combinations(sorted(indices), size)]


def subset_name(subset: tuple[int, ...]) -> str:
    """File stem that makes the subset readable: components 0 and 2 removed -> 'drop-0+2'."""
    return "drop-" + "+".join(str(index) for index in subset)
