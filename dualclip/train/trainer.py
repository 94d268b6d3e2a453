"""The training loop: one readable loop for every method, CPU or GPU, resumable.

The step budget comes from the compute mode: ``equal_compute`` gives every method
``budget_images // batch_images`` steps of ``batch_images`` images (the same image
forward passes, so methods that add dual images see fewer epochs of originals);
``equal_epochs`` gives every method the same number of passes over its data.

Checkpoints carry model, optimiser, scheduler and RNG state, the step and the config;
a killed run resumes from the last one and ends with the same weights as an
uninterrupted run (on CPU), because the batch plan is a pure function of
(method, seed, epoch) and the step itself uses no randomness.

With ``train.nproc_per_node`` > 1 the same loop runs in every ``torchrun`` process on
its share of each batch (see :mod:`dualclip.train.distributed`): the batches, the loss
and the budget are those of the one-process run.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import pickle
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dualclip.eval.embed import normalised_image_features, normalised_text_features
from dualclip.io import atomic_write, code_version, read_json, write_json, write_text
from dualclip.runtime import resolve_device
from dualclip.train import distributed
from dualclip.train.batches import BatchSpec, TrainData, nearest_neighbours, plan_epoch
from dualclip.train.loss import DualContrastiveLoss, duplicate_text_masks
from dualclip.train.methods import get_method
from dualclip.train.models import create_model, refused_global

CPU = torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def uses_amp(device: torch.device, precision: str) -> bool:
    """bf16 autocast (``precision: amp``) on CUDA only; the CPU path stays fp32."""
    return device.type == "cuda" and precision == "amp"


def autocast_factory(device: torch.device, precision: str):
    """A no-argument context-manager factory for :func:`training_step`."""
    enabled = uses_amp(device, precision)
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def initial_model(model_config: dict, seed: int):
    """(model, preprocess, tokenizer) as a run with this seed starts, on the CPU."""
    seed_everything(seed)
    return create_model(model_config["name"], model_config.get("pretrained"), device="cpu")


class ImageFiles(torch.utils.data.Dataset):
    """The image table (originals, then dual images), read from disk when a batch needs it:
    the train job's memory does not grow with the number of images."""

    def __init__(self, files: list[str], preprocess):
        self.files, self.preprocess = files, preprocess

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(self.files[index]) as image:
            return self.preprocess(image.convert("RGB"))


class StackImages:
    """collate_fn: a batch's images as one tensor, an empty one for a process whose
    share of a small batch is empty (picklable for worker processes)."""

    def __init__(self, image_shape: tuple[int, ...]):
        self.image_shape = tuple(image_shape)

    def __call__(self, images: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(images) if images else torch.empty((0, *self.image_shape))


def image_loader(images: ImageFiles, batches, workers: int, device: torch.device) -> torch.utils.data.DataLoader:
    """A DataLoader whose batch_sampler is the list of image-table indices of each batch,
    decoded and preprocessed by ``workers`` processes (0: in this process), in plan order."""
    return torch.utils.data.DataLoader(
        images, batch_sampler=batches, num_workers=workers, collate_fn=StackImages(images[0].shape),
        pin_memory=device.type == "cuda",
        generator=torch.Generator(),  # its worker seed must not draw from the global RNG that checkpoints carry
    )


def chunks_of(n: int, size: int = 256) -> list[range]:
    """Consecutive index ranges of at most ``size`` covering 0..n-1: a batch_sampler for reading a table."""
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


def load_images(files: list[str], preprocess, workers: int = 0) -> torch.Tensor:
    """Every file preprocessed into one tensor: for small sets (the validation slice)."""
    loader = image_loader(ImageFiles(files, preprocess), chunks_of(len(files)), workers, CPU)
    return torch.cat(list(tqdm(loader, desc="load images", mininterval=10)))


def neighbour_features(data: TrainData, preprocess, config: dict, model, workers: int = 0,
                       device: torch.device = CPU) -> torch.Tensor:
    """The embedding of each sample's original image that its nearest neighbours are found in."""
    source = config.get("neighbour_model", "pixels")
    if source not in ("pixels", "initial"):
        raise ValueError(f"train.negclip.neighbour_model: unknown {source!r}; use 'pixels' or 'initial'")
    originals = ImageFiles([data.image_files[sample.image] for sample in data.samples], preprocess)
    features = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for pixels in tqdm(image_loader(originals, chunks_of(len(originals)), workers, device), desc="neighbour features", mininterval=10):
            if source == "pixels":
                # the synthetic world has no pretrained model: 16x16 colour thumbnails stand in
                features.append(torch.nn.functional.adaptive_avg_pool2d(pixels, 16).flatten(1))
            else:
                features.append(model.encode_image(pixels.to(device)).float().cpu())
    model.train(was_training)
    features = torch.cat(features)
    if source == "pixels":
        features = features - features.mean(0, keepdim=True)
    return features


def neighbour_cache_key(data: TrainData, config: dict, model_config: dict, seed: int,
                        originals_digest: str | None = None) -> str:
    """What the neighbour table depends on: the embedding model (a randomly initialised one
    differs per seed), k, and the content of the original images (``originals_digest``, from
    the shard manifests' checksums; else their bytes are hashed here)."""
    import hashlib
    import json

    source = config.get("neighbour_model", "pixels")
    originals = [data.image_files[sample.image] for sample in data.samples]
    content = {"source": source, "k": int(config.get("k", 3)), "n": len(originals),
               "images": originals_digest or files_digest(originals),
               "model": model_config if source == "initial" else None,
               "seed": seed if source == "initial" and not model_config.get("pretrained") else None}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def compute_neighbours(data: TrainData, preprocess, config: dict, model, workers: int = 0,
                       device: torch.device = CPU, cache_file: Path | None = None) -> np.ndarray:
    """NegCLIP's hard negative images: the k nearest training images of each sample, read
    from ``cache_file`` (.npy) when a run with the same key (model and data) computed them."""
    if cache_file is not None and cache_file.exists():
        print(f"nearest neighbours from {cache_file}")
        return np.load(cache_file)
    features = neighbour_features(data, preprocess, config, model, workers, device)
    neighbours = nearest_neighbours(features, int(config.get("k", 3)), device=device)
    if cache_file is not None:
        # .npy: the same table gives the same bytes (a .npz records the time it was written)
        atomic_write(cache_file, lambda handle: np.save(handle, neighbours))
    return neighbours


def lr_lambda(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_optimizer(model, train_config: dict):
    # open_clip_train's rule: no weight decay on gains, biases, embeddings and the logit scale
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        exclude = parameter.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if exclude else decay).append(parameter)
    return torch.optim.AdamW(
        [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": float(train_config["weight_decay"])}],
        lr=float(train_config["lr"]), betas=tuple(train_config.get("betas", (0.9, 0.98))), eps=float(train_config.get("eps", 1e-6)),
    )


def count_steps(method: str, data: TrainData, train_config: dict, seed: int, neighbours) -> tuple[int, int]:
    """(total steps, steps per epoch of this method).

    Equal compute is counted in images: the batch plan (deterministic) is replayed until
    it has used ``budget_images`` images, so every method makes the same image forward
    passes to within one batch, whatever its partial batches and packing gaps.
    """
    if get_method(method).planner is None:
        return 0, 1  # the starting model (zeroshot), evaluated as it is
    batch_images = int(train_config["batch_images"])
    per_epoch = len(plan_epoch(method, data, batch_images, np.random.default_rng([seed, 0]), neighbours))
    if train_config["compute"] != "equal_compute":
        return int(train_config["epochs"]) * per_epoch, per_epoch
    budget, seen = int(train_config["budget_images"]), 0
    for step, _, batch in iterate_plan(method, data, batch_images, seed, neighbours, 0):
        seen += len(batch.images)
        if seen >= budget:
            return step + 1, per_epoch
    raise AssertionError("unreachable: the plan is endless")


def manifests_digest(manifests: dict[str, list[str]]) -> str:
    """The SHA-256 of the content of every file of these shards (input name -> manifest
    paths), from the checksums each manifest lists; a manifest written before manifests
    listed them has its files hashed here."""
    import hashlib
    import json

    from dualclip.fetch import sha256_file

    content = {}
    for name, paths in sorted(manifests.items()):
        content[name] = []
        for path in paths:
            record = read_json(path)
            checksums = record.get("sha256")
            if checksums is None:
                folder = Path(path).parent
                checksums = {file: sha256_file(folder / file) for file in record.get("files", {})}
            content[name].append(checksums)
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def files_digest(paths: list[str]) -> str:
    """The SHA-256 of these files' bytes, in order (for data that comes without manifests)."""
    import hashlib

    from dualclip.fetch import sha256_file

    return hashlib.sha256("\n".join(f"{path} {sha256_file(path)}" for path in paths).encode()).hexdigest()


def fingerprint_parts(config: dict, method: str, seed: int, data: TrainData, data_digest: str | None = None) -> dict:
    """What a checkpoint must share with the run that resumes it, part by part (so that the
    log can say which part changed): the run's settings, its texts and file names, the
    content of its files (``data_digest``, from the shards' manifests; the training images'
    bytes when None) and the code."""
    import hashlib
    import json

    def digest(value) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()

    return {
        "settings": digest({"config": config, "method": method, "seed": seed}),
        "texts and file names": digest({"images": data.image_files, "captions": [s.caption for s in data.samples],
                                        "duals": [s.duals for s in data.samples],
                                        "negatives": [s.negatives for s in data.samples]}),
        "file content": data_digest or files_digest(data.image_files),
        "code": code_version(),
    }


def run_fingerprint(parts: dict) -> str:
    """One digest of :func:`fingerprint_parts`: a checkpoint resumes only a run with the same."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def iterate_plan(method: str, data: TrainData, batch_images: int, seed: int, neighbours, start_step: int):
    """(step, epoch, batch) from ``start_step`` on, replaying the epochs' plans."""
    step, epoch = 0, 0
    while True:
        plan = plan_epoch(method, data, batch_images, np.random.default_rng([seed, epoch]), neighbours)
        for batch in plan:
            if step >= start_step:
                yield step, epoch, batch
            step += 1
        epoch += 1


def rng_state() -> dict:
    """The torch, numpy and Python RNG states as a tensor and lists, which
    ``torch.load(weights_only=True)`` reads back (numpy's tuple holds an array, which it refuses)."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(), "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached_gaussian)],
            "python": [version, list(internal), gauss_next]}


def set_rng_state(state: dict) -> None:
    """Restore the states of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def _save(path: Path, state: dict) -> None:
    atomic_write(path, lambda handle: torch.save(state, handle))


def local_images(batch: BatchSpec, context) -> list[int]:
    """The image-table indices of this process's share of a batch (all of it in one process)."""
    return batch.images[distributed.local_slice(len(batch.images), context)]


def make_loss(method: str, train_config: dict) -> DualContrastiveLoss:
    """The loss of a method: graded targets take their lambda from train.ours_soft."""
    if not get_method(method).graded_targets:
        return DualContrastiveLoss()
    settings = train_config.get("ours_soft") or {}
    if "lambda" not in settings:
        raise ValueError(f"{method}: set train.ours_soft.lambda (e.g. 2.0; larger is closer to ours)")
    return DualContrastiveLoss(subset_lambda=float(settings["lambda"]))


def training_step(network, loss_fn, tokenizer, pixels: torch.Tensor, batch: BatchSpec, context, autocast) -> dict:
    """The loss of one batch from this process's share of its images (``pixels``, the
    images of :func:`local_images`). ``network`` is the model, or its DDP wrapper: each
    process then encodes only its slice of the images and texts, and the features of all
    processes are gathered so that the loss sees the whole batch."""
    device = context.device
    text_share = distributed.local_slice(len(batch.texts), context)
    texts = tokenizer(batch.texts[text_share]).to(device)
    pixels = pixels.to(device, non_blocking=True)
    i2t, t2i = duplicate_text_masks(batch.texts, batch.image_pos, batch.text_pos)
    for image, text in batch.unmasked_pairs_off:
        i2t[image, text] = False
        t2i[text, image] = False
    lattice = {}
    if batch.image_lattice:
        lattice = {"image_lattice": torch.tensor(batch.image_lattice, device=device),
                   "text_lattice": torch.tensor(batch.text_lattice, device=device)}
    with autocast():
        # open_clip's forward: L2-normalised features and exp(logit_scale)
        image_features, text_features, logit_scale = network(image=pixels, text=texts)[:3]
        image_features = distributed.gather_rows(image_features.float(), len(batch.images), context)
        text_features = distributed.gather_rows(text_features.float(), len(batch.texts), context)
        return loss_fn(
            image_features, text_features, logit_scale.float(),
            torch.tensor(batch.image_pos, device=device), torch.tensor(batch.text_pos, device=device),
            i2t.to(device), t2i.to(device), **lattice,
        )


def train(config: dict, method: str, seed: int, data: TrainData, out_dir: str | Path, val=None,
          stop_after_steps: int | None = None, neighbour_cache: str | Path | None = None,
          data_digest: str | None = None, originals_digest: str | None = None, n_train: int | None = None) -> dict:
    """Train one (method, seed); returns the run summary also stored in the checkpoint.

    ``n_train``: the training-set size the run was planned with (its name, ``n{n}``), which
    names it in every score table even when images were skipped at download
    (``n_samples`` counts the ones it trained on); None: the samples of ``data``.

    ``val`` is an optional (images, captions) slice scored once per epoch (retrieval
    top-1 accuracy in both directions). ``stop_after_steps`` ends the process early,
    as a kill would, for resume tests. ``neighbour_cache``: the folder where NegCLIP's
    neighbour tables are kept, keyed by model and data (the run folder by default).
    ``data_digest``: the content of every file the run reads (:func:`manifests_digest`);
    None hashes the training images' bytes here. A checkpoint resumes the run only when
    this, the texts, the settings and the code all match. ``originals_digest``: the content
    of the original images alone, which keys the neighbour cache (None: hashed here).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_config = config["train"]
    context = distributed.setup(resolve_device(config.get("device", "auto")))
    device = context.device
    model, preprocess, tokenizer = initial_model(config["model"], seed)
    workers = int(train_config.get("loader_workers", 0))
    images = ImageFiles(data.image_files, preprocess)
    neighbours = None
    model.to(device).train()
    if get_method(method).uses_neighbours:
        if len(data.samples) < 2:
            raise ValueError(f"{method} needs at least 2 training images for its nearest-neighbour negatives")
        negclip = train_config.get("negclip", {})
        key = neighbour_cache_key(data, negclip, config["model"], seed, originals_digest)
        cache = Path(neighbour_cache or out_dir) / f"neighbours-{key}.npy"
        neighbours = compute_neighbours(data, preprocess, negclip, model, workers, device, cache)
    network = model
    if context.distributed:
        network = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    batch_images = int(train_config["batch_images"])
    total_steps, steps_per_epoch = count_steps(method, data, train_config, seed, neighbours)
    optimizer = make_optimizer(model, train_config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(int(train_config["warmup_steps"]), total_steps))
    loss_fn = make_loss(method, train_config)
    autocast = autocast_factory(device, train_config.get("precision", "amp"))

    checkpoint_path = out_dir / "checkpoint.pt"
    log_path = out_dir / "train_log.csv"
    start_step, images_seen, texts_seen, log_rows = 0, 0, 0, []
    parts = fingerprint_parts(config, method, seed, data, data_digest)
    fingerprint = run_fingerprint(parts)
    state = None
    if checkpoint_path.exists():  # every process reads it; rank 0 alone writes or deletes it
        try:
            state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            # written by a version that pickled RNG state as Python objects, or not ours at all
            print(f"ignoring {checkpoint_path}: safe loading (weights_only) refuses what it holds "
                  f"({refused_global(error)}); training from step 0")
        if state is not None and state.get("fingerprint") != fingerprint:
            # config, input content, texts or code changed since the kill: resuming would mix two runs
            saved = state.get("fingerprint_parts") or {}
            changed = [name for name, value in parts.items() if saved.get(name) != value] if saved else []
            print(f"ignoring {checkpoint_path}: it belongs to a run with another "
                  f"{', '.join(changed) or 'config, data or code version'} "
                  f"(saved by {state.get('code_version')}); training from step 0")
            state = None
    if context.distributed:
        torch.distributed.barrier()  # all have read it before rank 0 may delete it
    if state is None and checkpoint_path.exists() and context.is_main:
        checkpoint_path.unlink()
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        start_step, images_seen, texts_seen = state["step"], state["images_seen"], state["texts_seen"]
        log_rows = state["log_rows"]
        print(f"resumed from {checkpoint_path} at step {start_step}")
    resumed_from_step = start_step  # 0: a fresh run

    def state_dict(step: int) -> dict:
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": rng_state(),
            "step": step, "images_seen": images_seen, "texts_seen": texts_seen, "log_rows": log_rows,
            "config": config, "method": method, "seed": seed, "code_version": code_version(),
            "fingerprint": fingerprint, "fingerprint_parts": parts, "world_size": context.world_size,
        }

    checkpoint_every = int(train_config.get("checkpoint_every", 100))
    started = time.time()
    progress = tqdm(total=total_steps, initial=start_step, desc=f"train {method} seed {seed}", mininterval=10,
                    disable=not context.is_main)
    # on resume, the epoch of the last step taken, so its validation row is not lost
    last_epoch = next((row["epoch"] for row in reversed(log_rows) if "loss" in row), None)
    # the plan twice in lockstep: the DataLoader reads ahead, the loop takes the texts
    planned, to_load = itertools.tee(itertools.islice(
        iterate_plan(method, data, batch_images, seed, neighbours, start_step), max(0, total_steps - start_step)))
    loader = image_loader(images, (local_images(batch, context) for _, _, batch in to_load), workers, device)
    for (step, epoch, batch), pixels in zip(planned, loader):
        if stop_after_steps is not None and step >= stop_after_steps:
            progress.close()
            distributed.teardown(context)
            return {"stopped_at": step}
        if val is not None and last_epoch is not None and epoch != last_epoch and context.is_main:
            log_rows.append({"step": step, "epoch": last_epoch, **validate(model, tokenizer, val, device)})
        last_epoch = epoch
        losses = training_step(network, loss_fn, tokenizer, pixels, batch, context, autocast)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # as open_clip_train
        images_seen += len(batch.images)
        texts_seen += len(batch.texts)
        log_rows.append({
            "step": step + 1, "epoch": epoch, "lr": scheduler.get_last_lr()[0],
            **{key: round(float(value.detach()), 6) for key, value in losses.items()},
            "logit_scale": round(float(model.logit_scale.detach().exp()), 4), "images_seen": images_seen,
            "batch_images": len(batch.images), "batch_texts": len(batch.texts), "batch_originals": batch.n_originals,
        })
        progress.update(1)
        if (step + 1) % checkpoint_every == 0 and step + 1 < total_steps and context.is_main:
            _save(checkpoint_path, state_dict(step + 1))
    progress.close()
    if not context.is_main:
        distributed.teardown(context)
        return {"rank": context.rank, "steps": total_steps}
    if val is not None:
        log_rows.append({"step": total_steps, "epoch": last_epoch, **validate(model, tokenizer, val, device)})
    summary = {
        "method": method, "seed": seed, "steps": total_steps, "steps_per_epoch": steps_per_epoch,
        "epochs": round(total_steps / max(1, steps_per_epoch), 3), "images_seen": images_seen, "texts_seen": texts_seen,
        "n_train": len(data.samples) if n_train is None else int(n_train),
        "n_samples": len(data.samples), "n_duals_used": data.n_duals, "n_duals_rejected": data.n_duals_rejected,
        "duals_rejected_by_reason": data.rejected_reasons, "train_seconds_this_process": round(time.time() - started, 1),
        "device": str(device), "world_size": context.world_size, "code_version": code_version(),
        "resumed_from_step": resumed_from_step,
        # which of the power-set duals trained (dualclip.subsets); None without duals
        **subset_summary(method, data),
        "neighbour_model": train_config.get("negclip", {}).get("neighbour_model", "pixels") if neighbours is not None else None,
    }
    final = state_dict(total_steps)
    final["summary"] = summary
    del final["optimizer"], final["scheduler"]  # the final model is for evaluation
    _save(out_dir / "model.pt", final)
    write_log(log_path, log_rows)
    write_json(out_dir / "summary.json", summary)
    if checkpoint_path.exists():
        checkpoint_path.unlink()
    distributed.teardown(context)
    return summary


def subset_summary(method: str, data: TrainData) -> dict:
    """The run summary's record of the subset policy: the policy, the duals it left out,
    sample_k's k and the duals per image that trained."""
    if not get_method(method).uses_duals:
        return {"subset_policy": None, "n_duals_left_out_by_policy": 0, "sample_k": None, "duals_per_image": 0.0}
    return {"subset_policy": data.subset_policy, "n_duals_left_out_by_policy": data.n_duals_left_out_by_policy,
            "sample_k": None if data.sample_k is None else round(data.sample_k, 4),
            "duals_per_image": round(data.n_duals / max(1, len(data.samples)), 4)}


def write_log(path: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for row in rows:
        keys += [key for key in row if key not in keys]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())


@torch.no_grad()
def validate(model, tokenizer, val, device) -> dict:
    """Top-1 retrieval accuracy on the validation slice (same caption counts as a hit)."""
    images, captions = val
    model.eval()
    # the whole slice in one batch, on the training device (the engine's per-batch step)
    image_features = normalised_image_features(model, images, device)
    text_features = normalised_text_features(model, tokenizer, captions, device)
    model.train()
    similarity = image_features @ text_features.T
    same = torch.tensor([[a == b for b in captions] for a in captions], device=similarity.device)
    i2t = same[torch.arange(len(captions)), similarity.argmax(1)].float().mean().item()
    t2i = same[torch.arange(len(captions)), similarity.T.argmax(1)].float().mean().item()
    return {"val_i2t_top1": round(100 * i2t, 2), "val_t2i_top1": round(100 * t2i, 2)}
