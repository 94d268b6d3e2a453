"""The method registry: every training method once, with what it reads and how it plans.

In the style of open_clip's model registry: ``REGISTRY`` maps a name to a
:class:`Method` (its batch planner, whether it trains on duals, NegCLIP's swap negatives
or nearest neighbours, whether its targets are graded), in the order the report shows
them. The workflow (``dualclip.plan``), the trainer and the report read it; the
schema's ``train.methods`` enum and pattern are checked against it by a test.

A method that trains on duals may carry a subset policy in its name, ``ours@singletons``
(:data:`dualclip.subsets.SUBSET_POLICIES`), so one study trains several policies side by
side; without one it uses ``train.subsets``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Callable

from dualclip.subsets import DEFAULT_SUBSET_POLICY, SUBSET_POLICIES, check_policy
from dualclip.train.batches import plan_groups, plan_negclip, plan_pairs, plan_shuffled_stream

POLICY_SEPARATOR = "@"


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    # one epoch's batches: (data, sample order, batch_images, rng, neighbours) -> [BatchSpec]; None: not trained
    planner: Callable | None
    uses_duals: bool = False  # reads the inpaint and rewrite (and filter) stages
    uses_negatives: bool = False  # reads NegCLIP's swap captions from the parse records
    uses_neighbours: bool = False  # needs the nearest-neighbour table (train.negclip)
    graded_targets: bool = False  # targets graded by |S Δ S'| (train.ours_soft.lambda)
    listed: bool = True  # may be listed in train.methods (zeroshot comes from train.zeroshot)


REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in REGISTRY:
        raise ValueError(f"method {method.name!r} is registered twice")
    if POLICY_SEPARATOR in method.name:
        raise ValueError(f"method {method.name!r}: {POLICY_SEPARATOR!r} separates a subset policy from the name")
    REGISTRY[method.name] = method
    return method


# registration order = report order
register(Method("zeroshot", "the untrained starting model, evaluated as it is", None, listed=False))
register(Method("baseline", "CLIP InfoNCE on the original pairs", plan_pairs))
register(Method("negclip", "NegCLIP: swap negatives as text columns, nearest-neighbour images", plan_negclip,
                uses_negatives=True, uses_neighbours=True))
register(Method("ours", "a sample and its duals in one batch: dual images negatives for the caption, "
                "(dual image, dual text) pairs positives", partial(plan_groups, duals="pairs"), uses_duals=True))
register(Method("ours_neg", "ablation: dual images only as negatives", partial(plan_groups, duals="negatives"),
                uses_duals=True))
register(Method("ours_pos", "ablation: duals only as positives", partial(plan_groups, duals="positives"),
                uses_duals=True))
register(Method("ours_shuf", "ablation: ours' stream of pairs shuffled across batches", plan_shuffled_stream,
                uses_duals=True))
register(Method("ours+negclip", "ours plus NegCLIP's neighbours and swap negatives",
                partial(plan_groups, duals="pairs", with_neighbours=True),
                uses_duals=True, uses_negatives=True, uses_neighbours=True))
register(Method("ours_soft", "ours with targets graded inside a group: weight of (I_S, T_S') ~ exp(-lambda |S Δ S'|)",
                partial(plan_groups, duals="graded"), uses_duals=True, graded_targets=True))

# what train.methods may list (plus `<dual method>@<policy>`), in report order
METHODS = [name for name, method in REGISTRY.items() if method.listed]


def split_policy(name: str) -> tuple[str, str | None]:
    """``ours@singletons`` -> ("ours", "singletons"); ``ours`` -> ("ours", None)."""
    base, separator, policy = name.partition(POLICY_SEPARATOR)
    return base, (policy if separator else None)


def get_method(name: str) -> Method:
    """The registered method of a run's method name (``ours@<policy>`` included)."""
    base, policy = split_policy(name)
    if base not in REGISTRY:
        raise ValueError(f"train.methods: unknown method {name!r}; use one of {METHODS}, or a method on duals "
                         f"followed by @<subset policy> (e.g. ours@singletons)")
    method = REGISTRY[base]
    if policy is not None:
        if not method.uses_duals:
            raise ValueError(f"train.methods: {name!r}: {base} trains on no duals, so a subset policy does not apply; "
                             f"use {base}")
        check_policy(policy, where=f"train.methods: {name!r}")
    return method


def subset_policy(name: str, train_config: dict) -> str | None:
    """The subset policy a run trains with: the one in its name, else ``train.subsets``
    (default all); None for a method without duals."""
    if not get_method(name).uses_duals:
        return None
    policy = split_policy(name)[1]
    if policy is None:
        return check_policy(train_config.get("subsets", DEFAULT_SUBSET_POLICY))
    return policy


def method_rank(name: str) -> tuple[int, int]:
    """Sort key of a run's method name in report order: registry order, then the policy's
    order under its method; an unknown name sorts last."""
    base, policy = split_policy(name)
    if base not in REGISTRY or (policy is not None and policy not in SUBSET_POLICIES):
        return len(REGISTRY), 0
    return list(REGISTRY).index(base), 0 if policy is None else 1 + list(SUBSET_POLICIES).index(policy)


def _alternatives(names) -> str:
    return "|".join(re.escape(name) for name in names)


def policy_method_pattern() -> str:
    """The schema's pattern (train.methods) of a method on duals with a subset policy."""
    dual_methods = [name for name in METHODS if REGISTRY[name].uses_duals]
    return f"^(?:{_alternatives(dual_methods)}){re.escape(POLICY_SEPARATOR)}(?:{_alternatives(SUBSET_POLICIES)})$"


def method_wildcard() -> str:
    """Snakemake's constraint of the {method} wildcard: every registered name, and every
    method on duals with a policy."""
    return f"(?:{_alternatives(REGISTRY)}|{policy_method_pattern()[1:-1]})"
