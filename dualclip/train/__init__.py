"""train: one trainer, every method of the registry (:mod:`dualclip.train.methods`)."""

from __future__ import annotations

from pathlib import Path

from dualclip.io import read_json
from dualclip.subsets import DEFAULT_SUBSET_POLICY


def assemble_records(images, truth, parse=(), rewrite=(), duals=(), filters=()) -> list[dict]:
    """Per-sample training records from the per-image files of every stage.

    An image that the data stage skipped (``status: skipped``, e.g. a corrupt COCO
    file) is left out here, and counted in the log: its placeholder must not train.
    """
    parse = list(parse) or [None] * len(images)
    rewrite = list(rewrite) or [None] * len(images)
    duals = list(duals) or [None] * len(images)
    filters = list(filters) or [None] * len(images)
    records, skipped = [], []
    for image, truth_file, parse_file, rewrite_file, duals_file, filter_file in zip(images, truth, parse, rewrite, duals, filters):
        ground_truth = read_json(truth_file)
        if ground_truth.get("status") == "skipped":
            skipped.append(f"{ground_truth.get('image_id')}: {ground_truth.get('reason')}")
            continue
        record = {"image": str(image), "caption": ground_truth["caption"], "negatives": [], "duals": []}
        if parse_file:
            record["negatives"] = [n["text"] for n in read_json(parse_file).get("hard_negatives", [])]
        if rewrite_file and duals_file:
            texts = {tuple(d["subset"]): d for d in read_json(rewrite_file)["duals"]}
            inpainted = read_json(duals_file)
            accepted = {}
            if filter_file:
                accepted = {d["file"]: d["accepted"] for d in read_json(filter_file).get("decisions", [])}
            for dual in inpainted["duals"]:
                text = texts.get(tuple(dual["subset"]))
                if text is None:
                    raise ValueError(f"{rewrite_file}: no dual text for subset {dual['subset']} of {duals_file}; rerun the rewrite stage")
                dual_file = Path(duals_file).parent / dual["file"]
                if not dual_file.exists():
                    # dual PNGs are side files of the shard's records: recompute the shard
                    raise FileNotFoundError(
                        f"{dual_file} is missing though {duals_file} lists it; delete "
                        f"{Path(duals_file).parent.parent / 'manifest.json'} so that the inpaint stage reruns that shard"
                    )
                record["duals"].append({
                    "file": str(dual_file), "text": text["text"], "subset": list(dual["subset"]),
                    "check_ok": text["check_ok"], "accepted": accepted.get(dual["file"], True),
                })
        records.append(record)
    if skipped:
        print(f"{len(skipped)} images skipped at download are not trained on: " + "; ".join(skipped[:20]))
    return records


def run(model: dict, train: dict, device: str, method: str, seed: int, inputs, out_dir: str,
        n_images: int, n_val: int, shard_size: int, neighbour_cache: str | None = None) -> dict:
    """Train one run from the stages' shard manifests (``inputs.data``, ``.parse``, ...).

    ``inputs`` is Snakemake's named input or a plain dict of lists (a ``torchrun`` worker);
    ``neighbour_cache`` a folder where NegCLIP's neighbour tables are shared between runs.
    """
    from types import SimpleNamespace

    from dualclip.train.batches import build_train_data
    from dualclip.train.methods import get_method, subset_policy
    from dualclip.train.models import create_model
    from dualclip.train.trainer import load_images, manifests_digest
    from dualclip.train.trainer import train as train_loop

    if isinstance(inputs, dict):
        inputs = SimpleNamespace(**inputs)
    get_method(method)  # an unknown name stops here, naming train.methods and the choices
    from dualclip.workflow import per_image_files

    def files(manifests, pattern, n=n_images):
        return per_image_files(list(manifests), n, shard_size, pattern) if manifests else []

    records = assemble_records(
        files(inputs.data, "{slot}.png"), files(inputs.data, "{slot}.json"), files(inputs.parse, "{slot}.json"),
        files(inputs.rewrite, "{slot}.json"), files(inputs.inpaint, "{slot}/duals.json"), files(inputs.filter, "{slot}.json"),
    )
    # the subset policy filters the power-set duals that inpaint and rewrite made: nothing is recomputed
    policy = subset_policy(method, train)
    data = build_train_data(records, use_failed_rewrites=train.get("use_failed_rewrites", False),
                            subsets=policy or DEFAULT_SUBSET_POLICY, seed=seed)
    print(f"{method}: {len(data.samples)} samples, {data.n_duals} dual pairs used, {data.n_duals_rejected} left out {data.rejected_reasons}"
          + (f"; subset policy {policy} left out {data.n_duals_left_out_by_policy}" if policy else "")
          + (f" (sample_k: k = {data.sample_k:.3f} per image)" if data.sample_k is not None else ""))
    config = {"model": model, "train": train, "device": device}
    # the content of exactly the shards this run reads (the first n images of each input):
    # a checkpoint of a run on other content (an upstream parameter changed) is not resumed
    def used_manifests(name: str) -> list[str]:
        """The manifests of the shards holding the first n images of one input."""
        n = int(n_val if name == "val" else n_images)
        return list(getattr(inputs, name, []))[:-(-n // shard_size)]

    data_digest = manifests_digest({name: used_manifests(name) for name in ("data", "parse", "rewrite", "inpaint", "filter", "val")})
    val = None
    if n_val:
        _, preprocess, tokenizer = create_model(model["name"], None)
        # assemble_records' rule: a slot skipped at download (its 1x1 placeholder, maybe
        # no caption) must not be scored either
        val_records = assemble_records(files(inputs.val, "{slot}.png", n_val), files(inputs.val, "{slot}.json", n_val))
        if len(val_records) < n_val:
            print(f"validation slice: {n_val - len(val_records)} of {n_val} images skipped at download are left out "
                  f"(their reasons are listed above)")
        if val_records:
            val_images = load_images([record["image"] for record in val_records], preprocess)
            val = (val_images, [record["caption"] for record in val_records])
        else:
            print(f"validation slice: all {n_val} images were skipped at download; training runs without validation")
    # the originals alone key NegCLIP's neighbour table, shared by the methods that use it
    originals_digest = manifests_digest({"data": used_manifests("data")})
    return train_loop(config, method, seed, data, out_dir, val=val, neighbour_cache=neighbour_cache,
                      data_digest=data_digest, originals_digest=originals_digest, n_train=n_images)
