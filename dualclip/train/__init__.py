"""train: one trainer, every method (baseline, negclip, ours and its ablations)."""

from __future__ import annotations

from pathlib import Path

from dualclip.io import read_json


def assemble_records(images, truth, parse=(), rewrite=(), duals=()) -> list[dict]:
    """Per-sample training records from the per-image files of every stage."""
    parse = list(parse) or [None] * len(images)
    rewrite = list(rewrite) or [None] * len(images)
    duals = list(duals) or [None] * len(images)
    records = []
    for image, truth_file, parse_file, rewrite_file, duals_file in zip(images, truth, parse, rewrite, duals):
        record = {"image": str(image), "caption": read_json(truth_file)["caption"], "negatives": [], "duals": []}
        if parse_file:
            record["negatives"] = [n["text"] for n in read_json(parse_file).get("hard_negatives", [])]
        if rewrite_file and duals_file:
            texts = {tuple(d["subset"]): d for d in read_json(rewrite_file)["duals"]}
            inpainted = read_json(duals_file)
            for dual in inpainted["duals"]:
                text = texts.get(tuple(dual["subset"]))
                if text is None:
                    raise ValueError(f"{rewrite_file}: no dual text for subset {dual['subset']} of {duals_file}; rerun the rewrite stage")
                record["duals"].append({
                    "file": str(Path(duals_file).parent / dual["file"]), "text": text["text"],
                    "check_ok": text["check_ok"], "accepted": dual.get("accepted", True),
                })
        records.append(record)
    return records


def run(model: dict, train: dict, device: str, method: str, seed: int, inputs, out_dir: str) -> dict:
    from dualclip.train.batches import METHODS, build_train_data
    from dualclip.train.models import create_model
    from dualclip.train.trainer import load_images, train as train_loop

    if method not in METHODS:
        raise ValueError(f"train.methods: unknown method {method!r}; use one of {METHODS}")
    records = assemble_records(inputs.images, inputs.truth, inputs.parse, inputs.rewrite, inputs.duals)
    data = build_train_data(records, use_failed_rewrites=train.get("use_failed_rewrites", False))
    print(f"{method}: {len(data.samples)} samples, {data.n_duals} dual pairs used, {data.n_duals_rejected} left out {data.rejected_reasons}")
    config = {"model": model, "train": train, "device": device}
    val = None
    if inputs.val:
        _, preprocess, tokenizer = create_model(model["name"], None)
        val_records = [read_json(path) for path in inputs.val]
        val_images = load_images([str(Path(path).with_suffix(".png")) for path in inputs.val], preprocess)
        val = (val_images, [record["caption"] for record in val_records])
    return train_loop(config, method, seed, data, out_dir, val=val)
