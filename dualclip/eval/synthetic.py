"""Synthetic counterparts of ARO, SugarCrepe and VALSE on the held-out test split.

Every item is built from the scene's ground truth, so a negative is false by
construction (checked: e.g. a replaced colour-shape pair is absent from the scene).
Text suites compare one image with a positive and negative captions; image suites
compare one caption with a positive and negative images:

- ``image_side``: the original vs the same scene re-rendered without one mentioned
  object (exact, no inpainting artefact: it measures absence);
- ``image_side_sham``: a sham-inpainted image (an empty background patch of the same
  shape inpainted, every object kept) vs the real inpainted dual: a model that keys
  on inpainting artefacts scores 50 here.

Calibrated against the ceiling (README "Calibrating the suites"): the tiny model reads the
colours of a scene almost perfectly (zs_colour 97-99) but barely its shapes, so an item that a
colour histogram decides puts every run at 94-99. Both image suites therefore remove only an
object whose colour another object keeps (one item per such object), and ``sc_replace_att``
recolours such an object with the colour of another object, so that both captions name the
same set of colours (one item per look, colour and shape).

Scoring as the official code: correct only when the positive scores strictly higher
than every negative (ties are wrong). Every text suite also gets a ``blind`` score:
the same texts scored against the mean test-image embedding, which exposes text-prior
shortcuts such as "the longer caption wins".

Zero-shot classification (``zs_shape``, ``zs_colour``; metric ``top1``), the synthetic
counterpart of ImageNet zero-shot: each single-object test scene is classified by its shape
and by its colour against prompts in the world's caption style ("a photo of a red circle",
:data:`CLASSIFICATION_TEMPLATES`). A class embedding is the normalised mean of its prompts'
normalised embeddings over the templates and over every value of the other attribute
(prompt ensembling as CLIP's); the true class must score strictly highest. It shows what a
compositional fine-tune costs on plain recognition. Its prompts and images are encoded
after, and apart from, the other suites' so that their scores stay bit-identical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from dualclip.data.shapes import (
    COLOURS,
    NUMBER_WORDS,
    RELATIONS,
    SHAPES,
    article,
    join_list,
    relation_between,
    render_scene,
)
from dualclip.eval import CLASSIFICATION_SUITES
from dualclip.eval.embed import embed_images, embed_texts
from dualclip.eval.scoring import strictly_best
from dualclip.inpaint import dilate
from dualclip.inpaint.opencv import OpenCVInpainter
from dualclip.io import write_json, write_png
from dualclip.runtime import stable_seed

TEXT_SUITES = ["aro_relation", "aro_attribution", "sc_replace_obj", "sc_replace_att", "sc_swap_obj", "sc_swap_att",
               "sc_add_obj", "sc_add_att", "valse_existence", "valse_counting", "omission"]
IMAGE_SUITES = ["image_side", "image_side_sham"]
ALL_SUITES = TEXT_SUITES + IMAGE_SUITES + ["retrieval_t2i", *CLASSIFICATION_SUITES]
CLASSIFICATION_TEMPLATES = ("{}", "a photo of {}")


def phrase(obj: dict, with_colour: bool = True, with_size: bool = False, colour: str | None = None,
           shape: str | None = None, size: str | None = None) -> str:
    words = ([size or obj["size"]] if with_size else []) + ([colour or obj["colour"]] if with_colour else [])
    words.append(shape or obj["shape"])
    return f"{article(words[0])} {' '.join(words)}"


def plural(shape: str, count: int) -> str:
    return f"{NUMBER_WORDS[count]} {shape}{'es' if shape.endswith('x') or shape.endswith('ss') else 's'}" if count > 1 else f"{article(shape)} {shape}"


def object_set(scene: dict) -> tuple:
    return tuple(sorted((o["colour"], o["shape"]) for o in scene["objects"]))


class SuiteBuilder:
    """Builds the items of every suite for one test scene with a seeded RNG."""

    def __init__(self, inpaint_config: dict, image_dir: Path):
        self.inpainter = OpenCVInpainter(inpaint_config)
        self.dilation = int(inpaint_config.get("dilation", 2))
        self.image_dir = image_dir

    def items_for(self, scene: dict, image_path: str, rng: np.random.Generator, suites: list[str]) -> list[dict]:
        objects = scene["objects"]
        order = [objects[i] for i in rng.permutation(len(objects))]
        present = {(o["colour"], o["shape"]) for o in objects}
        shapes_present = {o["shape"] for o in objects}
        # calibrated suites use only these: a colour histogram cannot tell their items apart
        colour_kept = [o for o in order if sum(p["colour"] == o["colour"] for p in objects) > 1]
        full = join_list([phrase(o) for o in order])
        novel = any(o.get("novel_pair") for o in objects)
        base = {"image": image_path, "scene": scene["index"], "novel": novel, "n_objects": len(objects)}
        items = []

        def text_item(suite, positive, negatives):
            if suite in suites and all(n != positive for n in negatives):
                items.append({**base, "suite": suite, "kind": "text", "positive": positive, "negatives": negatives})

        distinct = [o for o in order if sum((p["colour"], p["shape"]) == (o["colour"], o["shape"]) for p in objects) == 1]
        if len(distinct) >= 2:
            a, b = distinct[0], distinct[1]
            relation = RELATIONS[relation_between(scene, a["id"], b["id"])]
            text_item("aro_relation", f"{phrase(a)} {relation} {phrase(b)}", [f"{phrase(b)} {relation} {phrase(a)}"])
            swapped_false = (a["colour"], b["shape"]) not in present or (b["colour"], a["shape"]) not in present
            if a["shape"] != b["shape"] and swapped_false:
                text_item("sc_swap_obj", f"{phrase(a)} {relation} {phrase(b)}",
                          [f"{phrase(a, shape=b['shape'])} {relation} {phrase(b, shape=a['shape'])}"])
        pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1:]]
        size_pairs = [(a, b) for a, b in pairs if a["size"] != b["size"] and a["shape"] != b["shape"]
                      and not any(o["shape"] == a["shape"] and o["size"] == b["size"] for o in objects)
                      and not any(o["shape"] == b["shape"] and o["size"] == a["size"] for o in objects)]
        if size_pairs:
            a, b = size_pairs[0]
            text_item("aro_attribution", f"the {a['size']} {a['shape']} and the {b['size']} {b['shape']}",
                      [f"the {b['size']} {a['shape']} and the {a['size']} {b['shape']}"])
        colour_pairs = [(a, b) for a, b in pairs if a["colour"] != b["colour"] and a["shape"] != b["shape"]
                        and ((b["colour"], a["shape"]) not in present or (a["colour"], b["shape"]) not in present)]
        if colour_pairs:
            a, b = colour_pairs[0]
            swapped = [phrase(o, colour=b["colour"]) if o is a else phrase(o, colour=a["colour"]) if o is b else phrase(o) for o in order]
            text_item("sc_swap_att", full, [join_list(swapped)])
        target = order[int(rng.integers(len(order)))]
        absent_shapes = [s for s in SHAPES if s not in shapes_present]
        if absent_shapes:
            new_shape = absent_shapes[int(rng.integers(len(absent_shapes)))]
            text_item("sc_replace_obj", full, [join_list([phrase(o, shape=new_shape) if o is target else phrase(o) for o in order])])
        n_absent_colours = sum((c, target["shape"]) not in present for c in COLOURS)
        if n_absent_colours:
            rng.integers(n_absent_colours)  # the uncalibrated suite's draw: the later suites keep their items
        # such an object takes another object's colour: both captions name the same set of
        # colours (one colour's count moves by one); one item per look (colour, shape)
        recoloured_looks = set()
        for recoloured in colour_kept:
            look = (recoloured["colour"], recoloured["shape"])
            new_colours = [o["colour"] for o in order if (o["colour"], recoloured["shape"]) not in present]
            if new_colours and look not in recoloured_looks:
                recoloured_looks.add(look)
                text_item("sc_replace_att", full, [join_list([phrase(o, colour=new_colours[0]) if o is recoloured else phrase(o)
                                                              for o in order])])
        absent_pairs = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
        colour, shape = absent_pairs[int(rng.integers(len(absent_pairs)))]
        text_item("sc_add_obj", full, [join_list([phrase(o) for o in order] + [f"{article(colour)} {colour} {shape}"])])
        bare = join_list([phrase(o, with_colour=False) for o in order])
        wrong = [c for c in COLOURS if not any(o["shape"] == target["shape"] and o["colour"] == c for o in objects)]
        if wrong and sum(o["shape"] == target["shape"] for o in objects) == 1:
            colour = wrong[int(rng.integers(len(wrong)))]
            text_item("sc_add_att", bare, [join_list([phrase(o, colour=colour) if o is target else phrase(o, with_colour=False) for o in order])])
        if rng.random() < 0.5 or not absent_shapes:
            shape = target["shape"]
            text_item("valse_existence", f"there is {article(shape)} {shape}", [f"there is no {shape}"])
        else:
            shape = absent_shapes[int(rng.integers(len(absent_shapes)))]
            text_item("valse_existence", f"there is no {shape}", [f"there is {article(shape)} {shape}"])
        count = sum(o["shape"] == target["shape"] for o in objects)
        wrong_counts = [c for c in (count - 1, count + 1) if 1 <= c <= 4]
        wrong_count = wrong_counts[int(rng.integers(len(wrong_counts)))]
        verb = lambda c: "are" if c > 1 else "is"  # noqa: E731
        text_item("valse_counting", f"there {verb(count)} {plural(target['shape'], count)}",
                  [f"there {verb(wrong_count)} {plural(target['shape'], wrong_count)}"])
        if len(order) >= 2:
            text_item("omission", full, [join_list([phrase(o) for o in order if o is not target])])
            if "image_side" in suites or "image_side_sham" in suites:
                for removed in colour_kept:
                    items += self.image_items(scene, image_path, order, removed, full, base, suites, rng)
        return items

    def image_items(self, scene, image_path, order, target, caption, base, suites, rng) -> list[dict]:
        stem = f"{scene['index']}"
        clean, _ = render_scene(scene, exclude=(target["id"],))
        clean_path = self.image_dir / f"{stem}-without-{target['id']}.png"
        write_png(clean_path, clean)
        items = []
        if "image_side" in suites:
            items.append({**base, "suite": "image_side", "kind": "image", "caption": caption,
                          "positive_image": image_path, "negative_images": [str(clean_path)]})
        if "image_side_sham" in suites:
            image, labels = render_scene(scene)
            mask = dilate(labels == target["id"] + 1, self.dilation)
            occupied = dilate(labels > 0, self.dilation)
            sham_mask = None
            size = scene["image_size"]
            ys, xs = np.nonzero(mask)
            for _ in range(50):
                # a shift that keeps the whole mask inside the image (np.roll must not wrap)
                dy = int(rng.integers(-ys.min(), size - ys.max()))
                dx = int(rng.integers(-xs.min(), size - xs.max()))
                moved = np.roll(mask, (dy, dx), axis=(0, 1))
                if not (moved & occupied).any():
                    sham_mask = moved
                    break
            if sham_mask is not None:
                sham, dual = self.inpainter.inpaint(image, [sham_mask, mask], [0, 0])
                sham_path = self.image_dir / f"{stem}-sham-{target['id']}.png"
                dual_path = self.image_dir / f"{stem}-dual-{target['id']}.png"
                write_png(sham_path, sham)
                write_png(dual_path, dual)
                items.append({**base, "suite": "image_side_sham", "kind": "image", "caption": caption,
                              "positive_image": str(sham_path), "negative_images": [str(dual_path)]})
        return items


def build_suites(inpaint_config: dict, test_records: list[tuple[str, dict]], suites: list[str], seed: int,
                 out_file: str | Path, image_dir: str | Path | None = None) -> dict:
    """Write every suite's items for the test split; returns the counts per suite."""
    out_file = Path(out_file)
    builder = SuiteBuilder(inpaint_config, Path(image_dir) if image_dir else out_file.parent / "images")
    items = []
    retrieval = []
    classification = []
    for image_path, record in tqdm(test_records, desc="build suites", mininterval=10):
        scene = record["scene"]
        rng = np.random.default_rng(stable_seed("suites", seed, scene["index"]))
        for item in builder.items_for(scene, image_path, rng, suites):
            item["item_id"] = f"{item['suite']}-{len(items)}"
            items.append(item)
        # its own stream: a change to another suite's draws must not reshuffle these captions
        retrieval_rng = np.random.default_rng(stable_seed("retrieval", seed, scene["index"]))
        order = [scene["objects"][i] for i in retrieval_rng.permutation(len(scene["objects"]))]
        retrieval.append({"image": image_path, "caption": join_list([phrase(o) for o in order]), "object_set": list(map(list, object_set(scene)))})
        if len(scene["objects"]) == 1:  # no other object to confuse the single label with
            obj = scene["objects"][0]
            classification.append({"image": image_path, "scene": scene["index"], "shape": obj["shape"],
                                   "colour": obj["colour"], "novel": bool(obj.get("novel_pair"))})
    counts = pd.Series([item["suite"] for item in items]).value_counts().to_dict()
    counts.update({suite: len(classification) for suite in CLASSIFICATION_SUITES if suite in suites and classification})
    missing = [suite for suite in suites if suite not in counts and suite != "retrieval_t2i"]
    if missing:
        raise ValueError(f"eval.suites: no test item could be built for {missing} from {len(test_records)} test "
                         f"scenes; raise dataset.n_test")
    classified = [suite for suite in CLASSIFICATION_SUITES if suite in suites]
    write_json(out_file, {"items": items, "retrieval": retrieval if "retrieval_t2i" in suites else [],
                          "classification": {"suites": classified, "items": classification if classified else []},
                          "counts": counts})
    return counts


# ------------------------------------------------------------------ scoring


def class_prompts(attribute: str) -> dict[str, list[str]]:
    """Class -> its prompts: every template with every value of the other attribute."""
    classes, others = (SHAPES, list(COLOURS)) if attribute == "shape" else (list(COLOURS), SHAPES)
    def name(cls, other):
        colour, shape = (other, cls) if attribute == "shape" else (cls, other)
        return f"{article(colour)} {colour} {shape}"
    return {cls: [t.format(name(cls, other)) for other in others for t in CLASSIFICATION_TEMPLATES] for cls in classes}


def classification_rows(model, preprocess, tokenizer, classification: dict, device, batch_size: int) -> list[dict]:
    """Per-item rows of the zero-shot classification suites (a tie for first place is wrong)."""
    entries = classification.get("items", [])
    if not entries:
        return []
    rows = []
    # the same single-object scenes for every suite: embedded once
    image_features = embed_images(model, preprocess, [e["image"] for e in entries], device, batch_size)
    for suite in classification["suites"]:
        attribute = CLASSIFICATION_SUITES[suite]
        prompts = class_prompts(attribute)
        texts = [t for ts in prompts.values() for t in ts]
        text_features = embed_texts(model, tokenizer, texts, device, batch_size)
        per_class = text_features.reshape(len(prompts), -1, text_features.shape[-1])
        weights = torch.nn.functional.normalize(per_class.mean(1), dim=-1)
        scores = image_features @ weights.T
        classes = list(prompts)
        for k, entry in enumerate(entries):
            truth = classes.index(entry[attribute])
            others = [float(v) for j, v in enumerate(scores[k]) if j != truth]
            rows.append({"item_id": f"{suite}-{k}", "suite": suite, "novel": entry["novel"], "n_objects": 1,
                         "pos_score": float(scores[k, truth]), "max_neg_score": max(others),
                         "correct": strictly_best(float(scores[k, truth]), others), "blind_correct": None})
    return rows


def score_suites(model, preprocess, tokenizer, suites: dict, device="cpu", batch_size: int = 256):
    """(per-item DataFrame, summary DataFrame in the long results format)."""
    items, retrieval = suites["items"], suites["retrieval"]
    image_list = sorted({item["image"] for item in items if item["kind"] == "text"}
                        | {path for item in items if item["kind"] == "image" for path in [item["positive_image"], *item["negative_images"]]}
                        | {r["image"] for r in retrieval})
    text_list = sorted({t for item in items if item["kind"] == "text" for t in [item["positive"], *item["negatives"]]}
                       | {item["caption"] for item in items if item["kind"] == "image"} | {r["caption"] for r in retrieval})
    image_features = embed_images(model, preprocess, image_list, device, batch_size)
    text_features = embed_texts(model, tokenizer, text_list, device, batch_size)
    image_index = {path: i for i, path in enumerate(image_list)}
    text_index = {text: i for i, text in enumerate(text_list)}
    test_images = sorted({r["image"] for r in retrieval} | {item["image"] for item in items if item["kind"] == "text"})
    mean_image = torch.nn.functional.normalize(image_features[[image_index[p] for p in test_images]].mean(0), dim=0)
    similarity = image_features @ text_features.T
    blind = text_features @ mean_image
    rows = []
    for item in items:
        if item["kind"] == "text":
            i = image_index[item["image"]]
            positive = float(similarity[i, text_index[item["positive"]]])
            negatives = [float(similarity[i, text_index[t]]) for t in item["negatives"]]
            blind_positive = float(blind[text_index[item["positive"]]])
            blind_negatives = [float(blind[text_index[t]]) for t in item["negatives"]]
            blind_correct = strictly_best(blind_positive, blind_negatives)
        else:
            t = text_index[item["caption"]]
            positive = float(similarity[image_index[item["positive_image"]], t])
            negatives = [float(similarity[image_index[p], t]) for p in item["negative_images"]]
            blind_correct = None
        rows.append({"item_id": item["item_id"], "suite": item["suite"], "novel": item["novel"], "n_objects": item["n_objects"],
                     "pos_score": positive, "max_neg_score": max(negatives),
                     "correct": strictly_best(positive, negatives), "blind_correct": blind_correct})
    for k, entry in enumerate(retrieval):
        scores = similarity[:, text_index[entry["caption"]]]
        candidates = [image_index[r["image"]] for r in retrieval]
        candidate_scores = scores[candidates]
        top = float(candidate_scores.max())
        best = candidates[int(torch.argmax(candidate_scores))]
        unique = int((candidate_scores == top).sum()) == 1  # a tie for first place is a miss, as everywhere
        hit = unique and tuple(map(tuple, retrieval[candidates.index(best)]["object_set"])) == tuple(map(tuple, entry["object_set"]))
        rows.append({"item_id": f"retrieval_t2i-{k}", "suite": "retrieval_t2i", "novel": None, "n_objects": len(entry["object_set"]),
                     "pos_score": float(scores[image_index[entry["image"]]]), "max_neg_score": None,
                     "correct": bool(hit), "blind_correct": None})
    rows += classification_rows(model, preprocess, tokenizer, suites.get("classification") or {}, device, batch_size)
    per_item = pd.DataFrame(rows)
    return per_item, summarise(per_item)


def summarise(per_item: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for suite, group in per_item.groupby("suite", sort=False):
        metric = "R@1" if suite == "retrieval_t2i" else "top1" if suite in CLASSIFICATION_SUITES else "accuracy"
        rows.append({"benchmark": "synthetic", "suite": suite, "metric": metric, "value": 100 * group["correct"].mean(), "n_items": len(group)})
        blind = group["blind_correct"].dropna()
        if len(blind):
            rows.append({"benchmark": "synthetic", "suite": suite, "metric": "blind_accuracy", "value": 100 * blind.astype(bool).mean(), "n_items": len(blind)})
        novel = group[group["novel"] == True]  # noqa: E712 (a column of bool/None)
        if len(novel) and suite != "retrieval_t2i":
            rows.append({"benchmark": "synthetic", "suite": suite, "metric": "accuracy_novel_pairs", "value": 100 * novel["correct"].mean(), "n_items": len(novel)})
    return pd.DataFrame(rows)
