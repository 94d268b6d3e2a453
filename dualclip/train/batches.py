"""Training data and the batch planners of every method (the registry, :mod:`methods`,
names them).

A batch is planned as indices into one image table (originals first, then dual
images) plus the texts, the positive of each image and text, and optional masks. A
plan is a pure function of (method, seed, epoch), so a resumed run replays exactly the
batches of an uninterrupted one.

All methods fill a batch up to the same number of images (``batch_images``), so equal
steps mean equal image forward passes: the compute is matched in images seen.

numpy is imported where it is used: the method registry imports this module, and the
workflow imports the registry while it plans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dualclip.subsets import (
    DEFAULT_SUBSET_POLICY,
    check_policy,
    policy_keeps,
    sample_k_choice,
    sample_k_counts,
    subset_bits,
)

if TYPE_CHECKING:
    import numpy as np

# sample_k's draw of subsets: a stream apart from the epoch plans' default_rng([seed, epoch])
SAMPLE_K_STREAM = 0x5AB5E7


@dataclass
class Sample:
    image: int  # index into the image table
    caption: str
    negatives: list[str] = field(default_factory=list)  # NegCLIP swap captions
    duals: list[tuple[int, str]] = field(default_factory=list)  # (image index, dual text)
    dual_subsets: list[tuple[int, ...] | None] = field(default_factory=list)  # the removed components of each dual


@dataclass
class TrainData:
    image_files: list[str]
    samples: list[Sample]
    n_duals_rejected: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    subset_policy: str = DEFAULT_SUBSET_POLICY
    n_duals_left_out_by_policy: int = 0  # power-set duals (passing their checks or not) the policy did not choose
    sample_k: float | None = None  # sample_k's k: usable singleton duals per image that has a usable dual

    @property
    def n_duals(self) -> int:
        return sum(len(sample.duals) for sample in self.samples)


@dataclass
class BatchSpec:
    images: list[int]
    texts: list[str]
    image_pos: list[int]
    text_pos: list[int]
    # (image index, text index) pairs that must not act as negatives (ours_pos)
    unmasked_pairs_off: list[tuple[int, int]] = field(default_factory=list)
    n_originals: int = 0
    # (group, subset bit mask) of each image and text, for targets graded by |S Δ S'| (ours_soft)
    image_lattice: list[tuple[int, int]] = field(default_factory=list)
    text_lattice: list[tuple[int, int]] = field(default_factory=list)


def build_train_data(records: list[dict], use_failed_rewrites: bool = False, use_rejected_duals: bool = False,
                     subsets: str = DEFAULT_SUBSET_POLICY, seed: int = 0) -> TrainData:
    """From per-image records {image, caption, negatives, duals:[{file, text, subset, check_ok, accepted}]}.

    ``subsets`` is the subset policy (:data:`dualclip.subsets.SUBSET_POLICIES`): which of
    the power-set duals the run trains on. A structural policy chooses by subset, then
    failed checks and filter rejections are left out; ``sample_k`` draws, with a generator
    seeded by ``seed``, k duals from each image's usable power set, k = the usable singleton
    duals per image that has a usable dual: as many duals as ``singletons`` uses on this
    data, exactly in total (an image with fewer usable duals than k hands its share on)."""
    import numpy as np

    check_policy(subsets)
    rejected = {"dual text failed its check": 0, "dual image rejected by the filter": 0}
    left_out = 0
    chosen_duals = []
    for record in records:
        duals = record.get("duals", [])
        if subsets != "all":
            missing = [dual["file"] for dual in duals if "subset" not in dual]
            if missing:
                raise ValueError(f"{record['image']}: dual {missing[0]} has no 'subset'; the subset policy "
                                 f"{subsets!r} (train.subsets) needs it (assemble_records reads it from duals.json)")
        found = sorted({index for dual in duals for index in dual.get("subset", ())})
        usable = []
        for dual in duals:
            if subsets not in ("all", "sample_k") and not policy_keeps(subsets, dual["subset"], found):
                left_out += 1
                continue
            if not dual.get("check_ok", True) and not use_failed_rewrites:
                rejected["dual text failed its check"] += 1
                continue
            if not dual.get("accepted", True) and not use_rejected_duals:
                rejected["dual image rejected by the filter"] += 1
                continue
            usable.append(dual)
        chosen_duals.append(usable)
    sample_k = None
    if subsets == "sample_k" and records:
        singletons = sum(len(dual["subset"]) == 1 for usable in chosen_duals for dual in usable)
        sample_k = singletons / max(1, sum(bool(usable) for usable in chosen_duals))  # per image with a dual
        rng = np.random.default_rng([seed, SAMPLE_K_STREAM])
        counts = sample_k_counts(singletons, [len(usable) for usable in chosen_duals], rng)
        drawn = []
        for usable, count in zip(chosen_duals, counts):
            drawn.append([usable[i] for i in sample_k_choice(count, len(usable), rng)])
            left_out += len(usable) - count
        chosen_duals = drawn
    image_files, samples = [], []
    for record, duals in zip(records, chosen_duals):
        sample = Sample(image=len(image_files), caption=record["caption"], negatives=list(record.get("negatives", [])))
        image_files.append(record["image"])
        for dual in duals:
            sample.duals.append((len(image_files), dual["text"]))
            # None, not (): a dual without its subset must not pass for the original in graded targets
            sample.dual_subsets.append(tuple(dual["subset"]) if "subset" in dual else None)
            image_files.append(dual["file"])
        samples.append(sample)
    return TrainData(image_files, samples, sum(rejected.values()), rejected, subsets, left_out, sample_k)


def _pairs_batch(pairs: list[tuple[int, str]]) -> BatchSpec:
    n = len(pairs)
    return BatchSpec([p[0] for p in pairs], [p[1] for p in pairs], list(range(n)), list(range(n)), n_originals=n)


def _pack_groups(order: list[int], sizes: list[int], capacity: int) -> list[list[int]]:
    """Consecutive groups (in ``order``) packed into batches of at most ``capacity`` images."""
    batches, current, used = [], [], 0
    for index in order:
        size = min(sizes[index], capacity)
        if current and used + size > capacity:
            batches.append(current)
            current, used = [], 0
        current.append(index)
        used += size
    if current:
        batches.append(current)
    return batches


def plan_epoch(method: str, data: TrainData, batch_images: int, rng: np.random.Generator,
               neighbours: np.ndarray | None = None) -> list[BatchSpec]:
    """The batches of one epoch of ``method`` (a name of the registry, maybe ``ours@<policy>``:
    the policy chose the data's duals already). Every plan first draws the order of the
    samples, then the method's planner may draw more."""
    from dualclip.train.methods import get_method  # the registry imports the planners below

    planner = get_method(method).planner
    if planner is None:
        raise ValueError(f"{method} is not trained, so it has no batch plan")
    order = [int(i) for i in rng.permutation(len(data.samples))]
    return planner(data, order, batch_images, rng, neighbours)


def plan_pairs(data: TrainData, order: list[int], batch_images: int, rng, neighbours=None) -> list[BatchSpec]:
    """CLIP: the original (image, caption) pairs, ``batch_images`` at a time."""
    samples = data.samples
    return [_pairs_batch([(samples[i].image, samples[i].caption) for i in order[k:k + batch_images]])
            for k in range(0, len(order), batch_images)]


def plan_shuffled_stream(data: TrainData, order: list[int], batch_images: int, rng, neighbours=None) -> list[BatchSpec]:
    """The same stream of originals and duals as `ours`, but as independent pairs shuffled
    across batches: a sample's duals rarely share its batch (``order`` is not used)."""
    samples = data.samples
    stream = [(s.image, s.caption) for s in samples] + [d for s in samples for d in s.duals]
    stream_order = rng.permutation(len(stream))
    batches = []
    for k in range(0, len(stream), batch_images):
        chosen = stream_order[k:k + batch_images]
        batch = _pairs_batch([stream[j] for j in chosen])
        batch.n_originals = int((chosen < len(samples)).sum())  # the stream starts with the originals
        batches.append(batch)
    return batches


def plan_negclip(data: TrainData, order: list[int], batch_images: int, rng, neighbours) -> list[BatchSpec]:
    """NegCLIP: half a batch of samples, each with one nearest-neighbour image and swap negatives."""
    half = max(1, batch_images // 2)
    return [_negclip_batch([data.samples[i] for i in order[k:k + half]], [order[k:k + half]], data, rng, neighbours, [])
            for k in range(0, len(order), half)]


def plan_groups(data: TrainData, order: list[int], batch_images: int, rng, neighbours=None, *,
                duals: str = "pairs", with_neighbours: bool = False) -> list[BatchSpec]:
    """A sample and all its duals in one batch (its *group*), groups packed in ``order``.

    ``duals``: ``pairs`` (ours), ``negatives`` (ours_neg: dual images only as negative
    columns), ``positives`` (ours_pos: nothing of a group is a negative for the group),
    ``graded`` (ours_soft: pairs, with each member's subset for graded targets).
    ``with_neighbours`` adds NegCLIP's neighbour images and swap negatives (ours+negclip)."""
    samples = data.samples
    sizes = [1 + len(s.duals) + (1 if with_neighbours else 0) for s in samples]
    batches = []
    for group_ids in _pack_groups(order, sizes, batch_images):
        if with_neighbours:
            batches.append(_negclip_batch([samples[i] for i in group_ids], [group_ids], data, rng, neighbours,
                                          [samples[i].duals for i in group_ids]))
        else:
            batches.append(_ours_batch([samples[i] for i in group_ids], duals, batch_images))
    return batches


def _ours_batch(group: list, duals: str, capacity: int) -> BatchSpec:
    images, texts, image_pos, text_pos, pairs_off = [], [], [], [], []
    image_lattice, text_lattice = [], []
    for group_index, sample in enumerate(group):
        members = [(sample.image, sample.caption)] + list(sample.duals)
        members = members[:capacity]
        if duals == "graded":
            if len(sample.dual_subsets) != len(sample.duals) or None in sample.dual_subsets:
                raise ValueError(f"caption {sample.caption!r}: graded targets need the subset of every dual")
            bits = [0] + [subset_bits(subset) for subset in sample.dual_subsets]
            image_lattice += [(group_index, b) for b in bits[:len(members)]]
            text_lattice += [(group_index, b) for b in bits[:len(members)]]
        first_image, first_text = len(images), len(texts)
        for image, text in members:
            images.append(image)
            if duals == "negatives" and image != sample.image:
                image_pos.append(-1)  # a dual image is only a negative column for the caption
                continue
            image_pos.append(len(texts))
            text_pos.append(len(images) - 1)
            texts.append(text)
        if duals == "positives":
            # duals are extra positive pairs only: no image or text of a group is a
            # negative for another member of the same group
            group_images = range(first_image, len(images))
            group_texts = range(first_text, len(texts))
            pairs_off += [(i, t) for i in group_images for t in group_texts if image_pos[i] != t]
    return BatchSpec(images, texts, image_pos, text_pos, pairs_off, n_originals=len(group),
                     image_lattice=image_lattice, text_lattice=text_lattice)


def _negclip_batch(group: list, ids: list[list[int]], data: TrainData, rng: np.random.Generator,
                   neighbours: np.ndarray | None, dual_lists: list) -> BatchSpec:
    """NegCLIP: images = samples (+ their duals) + one nearest-neighbour image per sample;
    texts = captions (+ dual texts), neighbour captions, then one swap negative of each
    sample and of each neighbour as image->text-only columns."""
    if neighbours is None:
        raise ValueError("negclip methods need the nearest-neighbour table (train.negclip.neighbours)")
    sample_ids = ids[0]
    images, texts, image_pos, text_pos = [], [], [], []
    dual_lists = dual_lists or [[] for _ in group]
    for sample, duals in zip(group, dual_lists):
        for image, text in [(sample.image, sample.caption)] + list(duals):
            images.append(image)
            image_pos.append(len(texts))
            text_pos.append(len(images) - 1)
            texts.append(text)
    chosen = [int(neighbours[i][rng.integers(neighbours.shape[1])]) for i in sample_ids]
    for j in chosen:
        images.append(data.samples[j].image)
        image_pos.append(len(texts))
        text_pos.append(len(images) - 1)
        texts.append(data.samples[j].caption)
    for sample in group + [data.samples[j] for j in chosen]:
        if sample.negatives:
            texts.append(sample.negatives[int(rng.integers(len(sample.negatives)))])
            text_pos.append(-1)
    return BatchSpec(images, texts, image_pos, text_pos, n_originals=len(group))


def nearest_neighbours(embeddings, k: int, device="cpu", max_block_bytes: int = 256 * 2**20) -> np.ndarray:
    """Indices of the k most cosine-similar other rows of each row, ties to the lower index.

    Blockwise: a block of rows against all rows at a time, so memory is O(N·k + block·N)
    (at most ``max_block_bytes`` of similarities), never an N×N matrix; on the GPU when
    ``device`` is one."""
    import numpy as np
    import torch

    features = torch.as_tensor(np.asarray(embeddings, dtype=np.float32), device=device)
    features = features / features.norm(dim=1, keepdim=True).clamp(min=1e-12)
    n = len(features)
    k = min(k, n - 1)
    # a few spare candidates, re-sorted by (similarity, index), break ties as a stable sort would
    candidates = min(n - 1, k + 8)
    block = max(1, max_block_bytes // (4 * n))
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, block):
        similarity = features[start:start + block] @ features.T
        rows = torch.arange(similarity.shape[0], device=similarity.device)
        similarity[rows, rows + start] = -float("inf")
        values, indices = torch.topk(similarity, candidates, dim=1)
        values, indices = values.cpu().numpy(), indices.cpu().numpy()
        order = np.lexsort((indices, -values), axis=1)[:, :k]
        out[start:start + block] = np.take_along_axis(indices, order, axis=1)
    return out
