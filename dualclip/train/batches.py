"""Training data and the batch plan of every method.

A batch is planned as indices into one image table (originals first, then dual
images) plus the texts, the positive of each image and text, and optional masks. A
plan is a pure function of (method, seed, epoch), so a resumed run replays exactly the
batches of an uninterrupted one.

All methods fill a batch up to the same number of images (``batch_images``), so equal
steps mean equal image forward passes: the compute is matched in images seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METHODS = ["baseline", "negclip", "ours", "ours_neg", "ours_pos", "ours_shuf", "ours+negclip"]


@dataclass
class Sample:
    image: int  # index into the image table
    caption: str
    negatives: list[str] = field(default_factory=list)  # NegCLIP swap captions
    duals: list[tuple[int, str]] = field(default_factory=list)  # (image index, dual text)


@dataclass
class TrainData:
    image_files: list[str]
    samples: list[Sample]
    n_duals_rejected: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)

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


def build_train_data(records: list[dict], use_failed_rewrites: bool = False, use_rejected_duals: bool = False) -> TrainData:
    """From per-image records {image, caption, negatives, duals:[{file, text, check_ok, accepted}]}."""
    image_files, samples = [], []
    rejected = {"dual text failed its check": 0, "dual image rejected by the filter": 0}
    for record in records:
        sample = Sample(image=len(image_files), caption=record["caption"], negatives=list(record.get("negatives", [])))
        image_files.append(record["image"])
        for dual in record.get("duals", []):
            if not dual.get("check_ok", True) and not use_failed_rewrites:
                rejected["dual text failed its check"] += 1
                continue
            if not dual.get("accepted", True) and not use_rejected_duals:
                rejected["dual image rejected by the filter"] += 1
                continue
            sample.duals.append((len(image_files), dual["text"]))
            image_files.append(dual["file"])
        samples.append(sample)
    return TrainData(image_files, samples, sum(rejected.values()), rejected)


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
    samples = data.samples
    order = [int(i) for i in rng.permutation(len(samples))]
    if method == "baseline":
        return [_pairs_batch([(samples[i].image, samples[i].caption) for i in order[k:k + batch_images]])
                for k in range(0, len(order), batch_images)]
    if method == "ours_shuf":
        # the same stream of originals and duals as `ours`, but as independent pairs
        # shuffled across batches: a sample's duals rarely share its batch
        stream = [(s.image, s.caption) for s in samples] + [d for s in samples for d in s.duals]
        stream_order = rng.permutation(len(stream))
        batches = []
        for k in range(0, len(stream), batch_images):
            chosen = stream_order[k:k + batch_images]
            batch = _pairs_batch([stream[j] for j in chosen])
            batch.n_originals = int((chosen < len(samples)).sum())  # the stream starts with the originals
            batches.append(batch)
        return batches
    if method == "negclip":
        half = max(1, batch_images // 2)
        return [_negclip_batch([samples[i] for i in order[k:k + half]], [order[k:k + half]], data, rng, neighbours, [])
                for k in range(0, len(order), half)]
    with_neighbours = method == "ours+negclip"
    sizes = [1 + len(s.duals) + (1 if with_neighbours else 0) for s in samples]
    batches = []
    for group_ids in _pack_groups(order, sizes, batch_images):
        if with_neighbours:
            batches.append(_negclip_batch([samples[i] for i in group_ids], [group_ids], data, rng, neighbours,
                                          [samples[i].duals for i in group_ids]))
        else:
            batches.append(_ours_batch([samples[i] for i in group_ids], method, batch_images))
    return batches


def _ours_batch(group: list, method: str, capacity: int) -> BatchSpec:
    images, texts, image_pos, text_pos, pairs_off = [], [], [], [], []
    for sample in group:
        members = [(sample.image, sample.caption)] + list(sample.duals)
        members = members[:capacity]
        first_image, first_text = len(images), len(texts)
        for image, text in members:
            images.append(image)
            if method == "ours_neg" and image != sample.image:
                image_pos.append(-1)  # a dual image is only a negative column for the caption
                continue
            image_pos.append(len(texts))
            text_pos.append(len(images) - 1)
            texts.append(text)
        if method == "ours_pos":
            # duals are extra positive pairs only: no image or text of a group is a
            # negative for another member of the same group
            group_images = range(first_image, len(images))
            group_texts = range(first_text, len(texts))
            pairs_off += [(i, t) for i in group_images for t in group_texts if image_pos[i] != t]
    return BatchSpec(images, texts, image_pos, text_pos, pairs_off, n_originals=len(group))


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
