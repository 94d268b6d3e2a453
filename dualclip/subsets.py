"""The subsets of an image's components that are removed: one dual image and text each.

Inpaint and rewrite always make the whole power set (every non-empty subset); a *subset
policy* then chooses, at train time, which of those duals a run trains on. Changing the
policy therefore recomputes nothing upstream: it filters files that already exist.

Shared by inpaint, rewrite, filter and train without importing any stage (and its libraries)."""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # inpaint and rewrite import this module: no numpy import for them
    import numpy as np

# policy -> what it keeps of the power set (train.subsets, or a method named `ours@<policy>`)
SUBSET_POLICIES = {
    "all": "every non-empty subset: the power set, up to 2^N-1 duals per image",
    "singletons": "one component removed at a time (the prior-work recipe): N duals",
    "leave_one_in": "all components removed but one: N duals (none when only one component was found)",
    "empty_only": "all found components removed at once: 1 dual",
    "sample_k": "k subsets per image drawn at random from the power set, k = the mean number of duals "
                "per image (with a dual) of singletons on the same data (same dual count, other subsets)",
}
DEFAULT_SUBSET_POLICY = "all"


def nonempty_subsets(indices: list[int]) -> list[tuple[int, ...]]:
    """All 2^k-1 non-empty subsets, smallest first, each sorted (the power set minus {})."""
    return [subset for size in range(1, len(indices) + 1) for subset in combinations(sorted(indices), size)]


def subset_name(subset: tuple[int, ...]) -> str:
    """File stem that makes the subset readable: components 0 and 2 removed -> 'drop-0+2'."""
    return "drop-" + "+".join(str(index) for index in subset)


def subset_bits(subset) -> int:
    """The subset as a bit mask (bit i: component i removed); |S Δ S'| = popcount(a ^ b)."""
    return sum(1 << int(index) for index in subset)


def check_policy(policy: str, where: str = "train.subsets") -> str:
    if policy not in SUBSET_POLICIES:
        raise ValueError(f"{where}: unknown subset policy {policy!r}; use one of {list(SUBSET_POLICIES)}")
    return policy


def policy_keeps(policy: str, subset, found) -> bool:
    """Whether a structural policy (every policy but sample_k) keeps the dual of ``subset``
    of an image whose found components are ``found``."""
    size, n_found = len(subset), len(found)
    if policy == "all":
        return True
    if policy == "singletons":
        return size == 1
    if policy == "leave_one_in":
        return size == n_found - 1
    if policy == "empty_only":
        return size == n_found
    raise ValueError(f"policy_keeps: {policy!r} is not a structural subset policy")


def sample_k_counts(total: int, capacities: list[int], rng: np.random.Generator) -> list[int]:
    """How many subsets each image draws so that ``total`` are drawn in all: every image
    with a dual floor(k) of them, k = total / images with a dual (at most its capacity),
    the rest one each to images with room left, in random order, until none is left.
    ``sum(capacities) >= total`` makes the total exact."""
    if total > sum(capacities):
        raise ValueError(f"sample_k: {total} duals asked for, only {sum(capacities)} available")
    with_duals = sum(capacity > 0 for capacity in capacities)
    base = total // with_duals if with_duals else 0
    counts = [min(base, capacity) for capacity in capacities]
    left = total - sum(counts)
    while left:
        room = [i for i in rng.permutation(len(capacities)) if counts[i] < capacities[i]]
        for i in room[:left]:
            counts[i] += 1
        left -= len(room[:left])
    return counts


def sample_k_choice(count: int, capacity: int, rng: np.random.Generator) -> list[int]:
    """``count`` of ``capacity`` candidate positions, uniformly without replacement, in order."""
    return sorted(int(i) for i in rng.choice(capacity, size=count, replace=False))
