"""The synthetic compositional world of the embedded default (``dataset: shapes``).

Scenes of 1-4 coloured shapes on textured backgrounds, with exact ground truth
(class, colour, size, bbox, instance mask, pairwise relations) and captions drawn
from varied templates (lists, relations, counts, attributes). Everything is a pure
function of (world seed, split, image index), so a shard holds the same images
whatever the total number of images is, and a scene can be re-rendered exactly
without any of its objects (the eval stage's clean "absent object" images).

Held out from training (present only in the test split): a set of colour-shape
combinations and three-of-a-kind counts, so the test measures generalisation to
compositions never seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dualclip.registry import Settings
from dualclip.runtime import stable_seed

SHAPES = ["circle", "square", "triangle", "star", "hexagon", "cross"]
COLOURS = {
    "red": (214, 39, 40),
    "green": (44, 160, 44),
    "blue": (31, 90, 220),
    "yellow": (240, 210, 30),
    "purple": (148, 60, 189),
    "orange": (250, 130, 20),
}
SIZES = ["small", "large"]
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
RELATIONS = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}


@dataclass(frozen=True, kw_only=True)
class WorldConfig(Settings):
    """The dataset section's keys of ``name: shapes``."""

    seed: int = 0
    image_size: int = 64
    min_objects: int = 1
    max_objects: int = 4
    # object diameter as a fraction of the image side, per size word
    size_fraction_small: float = 0.30
    size_fraction_large: float = 0.44
    max_same_shape_train: int = 2
    test_triplet_rate: float = 0.2

    @classmethod
    def from_config(cls, config: dict, where: str = "dataset") -> "WorldConfig":
        world = super().from_config(config, where)
        if world.min_objects > world.max_objects:
            raise ValueError(f"dataset.min_objects ({world.min_objects}) is above dataset.max_objects ({world.max_objects})")
        return world


def heldout_pairs(world_seed: int) -> set[tuple[str, str]]:
    """Six colour-shape pairs (one per colour and per shape) that never occur in training."""
    rng = np.random.default_rng(stable_seed("heldout", world_seed))
    order = rng.permutation(len(SHAPES))
    return {(colour, SHAPES[order[i]]) for i, colour in enumerate(COLOURS)}


# ---------------------------------------------------------------- scene sampling


def sample_scene(world: WorldConfig, split: str, index: int) -> dict:
    """The scene specification (objects, layout, background seed) of one image."""
    rng = np.random.default_rng(stable_seed("scene", world.seed, split, index))
    heldout = heldout_pairs(world.seed)
    size = world.image_size
    n_objects = int(rng.integers(world.min_objects, world.max_objects + 1))
    # Objects sit in distinct cells of a 2x2 grid with jitter: no occlusion, and the
    # spatial relations between any two objects are unambiguous.
    cells = rng.permutation(4)[:n_objects]
    # held-out compositions exist only in the test split (val is logged during training)
    held_out_split = split == "test"
    triplet = held_out_split and n_objects >= 3 and rng.random() < world.test_triplet_rate
    triplet_shape = SHAPES[int(rng.integers(len(SHAPES)))] if triplet else None
    objects = []
    for position, cell in enumerate(cells):
        for _ in range(100):
            shape = triplet_shape if triplet and position < 3 else SHAPES[int(rng.integers(len(SHAPES)))]
            colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
            if not held_out_split and (colour, shape) in heldout:
                continue
            same = sum(obj["shape"] == shape for obj in objects)
            if not held_out_split and same >= world.max_same_shape_train:
                continue
            if not triplet and same >= world.max_same_shape_train:
                continue
            break
        size_word = SIZES[int(rng.integers(2))]
        fraction = world.size_fraction_small if size_word == "small" else world.size_fraction_large
        diameter = max(6, int(round(fraction * size)))
        cell_side = size // 2
        row, col = divmod(int(cell), 2)
        slack = max(0, cell_side - diameter - 2)
        x0 = col * cell_side + 1 + int(rng.integers(0, slack + 1))
        y0 = row * cell_side + 1 + int(rng.integers(0, slack + 1))
        objects.append(
            {
                "id": position,
                "shape": shape,
                "colour": colour,
                "size": size_word,
                "bbox": [x0, y0, diameter, diameter],
                "angle": float(rng.uniform(-20, 20)) if shape not in ("circle",) else 0.0,
                "novel_pair": (colour, shape) in heldout,
            }
        )
    scene = {
        "split": split,
        "index": index,
        "image_size": size,
        "background_seed": stable_seed("background", world.seed, split, index),
        "objects": objects,
    }
    scene["relations"] = pairwise_relations(objects)
    return scene


def pairwise_relations(objects: list[dict]) -> list[dict]:
    relations = []
    for a in objects:
        for b in objects:
            if a["id"] == b["id"]:
                continue
            ax, ay = a["bbox"][0] + a["bbox"][2] / 2, a["bbox"][1] + a["bbox"][3] / 2
            bx, by = b["bbox"][0] + b["bbox"][2] / 2, b["bbox"][1] + b["bbox"][3] / 2
            dx, dy = bx - ax, by - ay
            if abs(dx) >= abs(dy):
                relation = "left" if dx > 0 else "right"
            else:
                relation = "above" if dy > 0 else "below"
            relations.append({"subject": a["id"], "relation": relation, "object": b["id"]})
    return relations


def relation_between(scene: dict, subject: int, obj: int) -> str:
    for relation in scene["relations"]:
        if relation["subject"] == subject and relation["object"] == obj:
            return relation["relation"]
    raise KeyError((subject, obj))


# ---------------------------------------------------------------- rendering


def render_background(size: int, seed: int) -> np.ndarray:
    """A desaturated, non-uniform texture: gradient + blurred noise + stripes + grain."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(95, 165)
    tint = rng.uniform(-12, 12, size=3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * np.pi)
    gradient = (np.cos(angle) * xx + np.sin(angle) * yy) * rng.uniform(-30, 30)
    frequency = rng.uniform(2, 6)
    stripes = np.sin(2 * np.pi * frequency * (np.sin(angle) * xx - np.cos(angle) * yy)) * rng.uniform(3, 10)
    blotches = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), size / 10)
    blotches *= 18 / (blotches.std() + 1e-6)
    luminance = base + gradient + stripes + blotches
    image = luminance[..., None] + tint[None, None, :] + rng.normal(0, 4, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def shape_polygon(shape: str, bbox: list[int], angle: float) -> np.ndarray | None:
    x, y, w, h = bbox
    cx, cy, r = x + w / 2, y + h / 2, w / 2
    if shape == "circle":
        return None
    if shape == "square":
        points = [(-0.82, -0.82), (0.82, -0.82), (0.82, 0.82), (-0.82, 0.82)]
    elif shape == "triangle":
        points = [(0, -1), (0.95, 0.8), (-0.95, 0.8)]
    elif shape == "hexagon":
        points = [(np.cos(t), np.sin(t)) for t in np.linspace(0, 2 * np.pi, 7)[:-1]]
    elif shape == "star":
        points = [
            ((1.0 if k % 2 == 0 else 0.45) * np.cos(t - np.pi / 2), (1.0 if k % 2 == 0 else 0.45) * np.sin(t - np.pi / 2))
            for k, t in enumerate(np.linspace(0, 2 * np.pi, 11)[:-1])
        ]
    elif shape == "cross":
        a, b = 0.33, 1.0
        points = [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    points = np.array(points, dtype=float)
    # every vertex inside the unit circle: any rotation then stays inside the recorded bbox
    points /= max(1.0, float(np.linalg.norm(points, axis=1).max()))
    theta = np.deg2rad(angle)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    points = np.array(points) @ rotation.T * r + np.array([cx, cy])
    return np.round(points * 16).astype(np.int32)  # 4 fractional bits for cv2's shift


def render_object(canvas: np.ndarray, obj: dict, colour: tuple[int, int, int], antialias: bool) -> None:
    line = cv2.LINE_AA if antialias else cv2.LINE_8
    polygon = shape_polygon(obj["shape"], obj["bbox"], obj["angle"])
    if polygon is None:
        x, y, w, _ = obj["bbox"]
        center = (int(round((x + w / 2) * 16)), int(round((y + w / 2) * 16)))
        cv2.circle(canvas, center, int(round(w / 2 * 16)), colour, -1, line, shift=4)
    else:
        cv2.fillPoly(canvas, [polygon], colour, line, shift=4)


def render_scene(scene: dict, exclude: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(RGB image, instance label map with object id + 1; 0 is background).

    ``exclude`` renders the same scene without those objects: the clean counterpart
    of a dual image, with no inpainting artefact.
    """
    size = scene["image_size"]
    image = render_background(size, scene["background_seed"])
    labels = np.zeros((size, size), dtype=np.uint8)
    for obj in scene["objects"]:
        if obj["id"] in exclude:
            continue
        shade = np.random.default_rng(stable_seed("shade", scene["background_seed"], obj["id"]))
        colour = tuple(int(np.clip(c + shade.integers(-12, 13), 0, 255)) for c in COLOURS[obj["colour"]])
        render_object(image, obj, colour, antialias=True)
        render_object(labels, obj, (obj["id"] + 1,) * 1, antialias=False)
    return image, labels


# ---------------------------------------------------------------- captions


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def noun_phrase(objects: list[dict], with_size: bool, definite: bool = False) -> str:
    """One phrase for identical-looking objects: 'a red circle', 'two large blue squares'."""
    obj = objects[0]
    words = ([obj["size"]] if with_size else []) + [obj["colour"]]
    noun = obj["shape"] + ("es" if obj["shape"].endswith("x") or obj["shape"].endswith("ss") else "s") * (len(objects) > 1)
    if len(objects) > 1:
        return f"{NUMBER_WORDS[len(objects)]} {' '.join(words)} {noun}"
    determiner = "the" if definite else article(words[0])
    return f"{determiner} {' '.join(words)} {noun}"


def group_objects(objects: list[dict], with_size: bool) -> list[list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for obj in objects:
        key = (obj["shape"], obj["colour"], obj["size"] if with_size else None)
        groups.setdefault(key, []).append(obj)
    return list(groups.values())


def join_list(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def make_caption(scene: dict, rng: np.random.Generator) -> tuple[str, str]:
    """(caption, template name). Templates: list, attributes, count, relation."""
    objects = [scene["objects"][i] for i in rng.permutation(len(scene["objects"]))]
    templates = ["list", "attributes", "count"] + (["relation"] * 2 if len(objects) >= 2 else [])
    template = templates[int(rng.integers(len(templates)))]
    if template == "relation":
        a, b = objects[0], objects[1]
        described = {(o["shape"], o["colour"]) for o in objects[2:]}
        if (a["shape"], a["colour"]) in described or (b["shape"], b["colour"]) in described \
                or (a["shape"], a["colour"]) == (b["shape"], b["colour"]):
            # the rest would repeat a related object's phrase: say it as a list instead
            template = "list"
    if template == "relation":
        with_size = bool(rng.integers(2))
        head = f"{noun_phrase([a], with_size)} {RELATIONS[relation_between(scene, a['id'], b['id'])]} {noun_phrase([b], with_size)}"
        rest = [noun_phrase(group, with_size) for group in group_objects(objects[2:], with_size)]
        caption = join_list([head] + rest)
    else:
        with_size = template == "attributes"
        groups = group_objects(objects, with_size)
        phrases = [noun_phrase(group, with_size) for group in groups]
        if template == "count":
            plural_first = len(groups[0]) > 1
            prefix = ["there are " if plural_first else "there is ", "we can see ", ""][int(rng.integers(3))]
        else:
            prefix = ["", "a picture of ", "an image showing ", "this scene contains "][int(rng.integers(4))]
        caption = prefix + join_list(phrases)
    return caption, template


def world_record(world: WorldConfig, split: str, index: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Image, instance label map and the ground-truth record of one image."""
    scene = sample_scene(world, split, index)
    image, labels = render_scene(scene)
    caption_rng = np.random.default_rng(stable_seed("caption", world.seed, split, index))
    caption, template = make_caption(scene, caption_rng)
    for obj in scene["objects"]:
        obj["area"] = int((labels == obj["id"] + 1).sum())
    record = {"scene": scene, "caption": caption, "template": template, "dataset": "shapes"}
    return image, labels, record
