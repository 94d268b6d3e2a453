"""Zero-shot classification: what a compositional fine-tune costs on general recognition.

Every paper in this line reports zero-shot ImageNet next to SugarCrepe. Datasets (config
``zeroshot_classification: {imagenet, cifar10, cifar100}``, each a folder; a dataset without
one, or whose folder does not hold it, is skipped and listed with the reason):

* ``imagenet``: ImageNet-1k validation (50,000 images) in the usual class-folder layout, one
  folder per class named by its WordNet id (``n01440764/`` ...); sorted, the folders give the
  standard class index (``torchvision.datasets.ImageFolder``);
* ``cifar10`` / ``cifar100``: the test split (10,000 images) in torchvision's on-disk format,
  the folder that holds ``cifar-10-batches-py/`` or ``cifar-100-python/``; never downloaded.

Class names and prompt templates are OpenAI CLIP's (github.com/openai/CLIP, MIT licence):
ImageNet from ``notebooks/Prompt_Engineering_for_ImageNet.ipynb`` as open_clip ships them
(``open_clip.zero_shot_metadata``: ``IMAGENET_CLASSNAMES``, ``OPENAI_IMAGENET_TEMPLATES``, 80
templates); CIFAR-10/100 copied from ``data/prompts.md`` at commit 04f4dc2 (18 templates).
A class embedding is the normalised mean of its prompts' normalised text embeddings
(``open_clip.build_zero_shot_classifier``); an image is assigned the classes of highest cosine
similarity: top-1 and top-5 accuracy in percent.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from .items import folder_problem

log = logging.getLogger(__name__)

# openai/CLIP data/prompts.md @ 04f4dc2 (MIT): CIFAR-10 and CIFAR-100 class names and templates.
CIFAR10_CLASSNAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSNAMES = (
    "apple", "aquarium fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl",
    "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair",
    "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin",
    "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp",
    "lawn mower", "leopard", "lion", "lizard", "lobster", "man", "maple tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak tree", "orange", "orchid", "otter", "palm tree", "pear", "pickup truck",
    "pine tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet pepper", "table", "tank", "telephone", "television",
    "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow tree", "wolf",
    "woman", "worm",
)
CIFAR_TEMPLATES = (
    "a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
    "a low contrast photo of a {}.", "a high contrast photo of a {}.", "a bad photo of a {}.",
    "a good photo of a {}.", "a photo of a small {}.", "a photo of a big {}.", "a photo of the {}.",
    "a blurry photo of the {}.", "a black and white photo of the {}.", "a low contrast photo of the {}.",
    "a high contrast photo of the {}.", "a bad photo of the {}.", "a good photo of the {}.",
    "a photo of the small {}.", "a photo of the big {}.",
)

#: dataset -> the split scored (the results' ``suite``), its image count and where it comes from.
DATASETS = {
    "imagenet": {"suite": "val", "n_items": 50_000,
                 "hint": "the ImageNet-1k validation images sorted into the 1000 WordNet-id class folders "
                         "(n01440764/ ...), e.g. with the valprep.sh script of the PyTorch ImageNet example"},
    "cifar10": {"suite": "test", "n_items": 10_000,
                "hint": "the folder holding cifar-10-batches-py/ (torchvision.datasets.CIFAR10(root, "
                        "download=True) writes it; https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz)"},
    "cifar100": {"suite": "test", "n_items": 10_000,
                 "hint": "the folder holding cifar-100-python/ (torchvision.datasets.CIFAR100(root, "
                         "download=True) writes it; https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz)"},
}
TOP_K = (1, 5)


class DatasetMissing(Exception):
    """The dataset is not where the config points: the reason its scores are skipped."""


def class_folder_dataset(root: str | os.PathLike, classnames: Sequence[str], transform, what: str = "dataset"):
    """A class-folder dataset (``root/<class folder>/<image>``) whose sorted folders are the
    classes of ``classnames`` in order; raises :class:`DatasetMissing` when there is none."""
    from torchvision.datasets import ImageFolder

    root = Path(root)
    problem = folder_problem(root)
    if problem is not None:
        raise DatasetMissing(problem)
    dataset = ImageFolder(str(root), transform=transform)
    if len(dataset.classes) != len(classnames):
        raise ValueError(
            f"{what}: {root} holds {len(dataset.classes)} class folders ({', '.join(dataset.classes[:3])}, ...) "
            f"but the class names list {len(classnames)}; point it at the folder whose subfolders are "
            f"exactly the {len(classnames)} classes")
    return dataset


def open_dataset(name: str, folder: str | os.PathLike | None, transform):
    """(dataset, class names, templates) of one configured dataset; raises
    :class:`DatasetMissing` with the reason when it is not there."""
    if name not in DATASETS:
        raise ValueError(f"unknown zero-shot classification dataset {name!r}; choose from {list(DATASETS)}")
    hint = DATASETS[name]["hint"]
    if not folder:
        raise DatasetMissing(f"no folder is configured (zeroshot_classification.{name}); give {hint}")
    if name == "imagenet":
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

        try:
            dataset = class_folder_dataset(folder, IMAGENET_CLASSNAMES, transform, "zeroshot_classification.imagenet")
        except DatasetMissing as e:
            raise DatasetMissing(f"{e}; give {hint}") from e
        return dataset, IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES
    from torchvision.datasets import CIFAR10, CIFAR100

    cls, classnames = (CIFAR10, CIFAR10_CLASSNAMES) if name == "cifar10" else (CIFAR100, CIFAR100_CLASSNAMES)
    try:
        dataset = cls(str(folder), train=False, download=False, transform=transform)
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
        raise DatasetMissing(f"{folder}: {e}; give {hint}") from e
    # CLIP's names are torchvision's with spaces for underscores: the label order must agree
    if tuple(c.replace("_", " ") for c in dataset.classes) != classnames:
        raise ValueError(f"zeroshot_classification.{name}: the classes in {folder} are not CIFAR's "
                         f"({dataset.classes[:3]} ...); point it at the official {name} files")
    return dataset, classnames, CIFAR_TEMPLATES


@torch.no_grad()
def zero_shot_classify(model, tokenizer, dataset, classnames: Sequence[str], templates, device="cpu",
                       batch_size: int = 64, num_workers: int = 0) -> pd.DataFrame:
    """Per image: its label, the predicted top-5 classes and whether the label is in the top k."""
    from open_clip import build_zero_shot_classifier
    from torch.utils.data import DataLoader

    from dualclip.eval.embed import normalised_image_features

    was_training = model.training
    model.eval()
    try:
        weights = build_zero_shot_classifier(model, tokenizer, classnames, templates, device=device).float()
        rows = []
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, shuffle=False)
        k = min(max(TOP_K), len(classnames))
        for images, labels in loader:
            features = normalised_image_features(model, images, device)
            top = (features @ weights).topk(k, dim=-1).indices.cpu()
            for label, predicted in zip(labels.tolist(), top.tolist()):
                rows.append({"label": label, "predicted": predicted[0], "top5": " ".join(map(str, predicted)),
                             **{f"top{n}_correct": label in predicted[:n] for n in TOP_K}})
    finally:
        model.train(was_training)
    return pd.DataFrame(rows)


def summarise_classification(name: str, per_item: pd.DataFrame, n_classes: int) -> pd.DataFrame:
    """top1 / top5 accuracy (%) in the long results format; top-5 only with more than 5 classes.
    ``n_items_total`` is the size of the official split, so a partial copy is flagged."""
    info = DATASETS.get(name, {"suite": "test", "n_items": len(per_item)})
    rows = [{"benchmark": name, "suite": info["suite"], "metric": f"top{n}",
             "value": 100.0 * per_item[f"top{n}_correct"].mean(), "n_items": len(per_item)}
            for n in TOP_K if n == 1 or n_classes > n]
    out = pd.DataFrame(rows)
    out["n_items_total"] = max(info["n_items"], len(per_item))
    out["incomplete"] = out["n_items"] < out["n_items_total"]
    return out


def evaluate_classification(model_file: str | os.PathLike, datasets: dict, out_csv: str | os.PathLike,
                            per_item_csv: str | os.PathLike, skips_csv: str | os.PathLike, device: str = "auto",
                            batch_size: int = 64, num_workers: int = 0) -> pd.DataFrame:
    """Score one trained run on every dataset of ``datasets`` (name -> folder or None); writes
    the long-format scores (as the benchmarks), the per-image predictions and one skip row
    per dataset that is not there."""
    from dualclip.eval import label_with_run
    from dualclip.io import write_text
    from dualclip.runtime import resolve_device
    from dualclip.train.models import load_checkpoint_model

    from .stage import SCORE_COLUMNS

    torch_device = resolve_device(device)
    model, preprocess, tokenizer, checkpoint = load_checkpoint_model(model_file, torch_device)
    frames, items, skips = [], [], []
    for name, folder in datasets.items():
        try:
            dataset, classnames, templates = open_dataset(name, folder, preprocess)
        except DatasetMissing as e:
            log.warning("zero-shot %s skipped: %s", name, e)
            skips.append({"benchmark": name, "suite": DATASETS[name]["suite"], "reason": str(e)})
            continue
        per_item = zero_shot_classify(model, tokenizer, dataset, classnames, templates, torch_device,
                                      batch_size, num_workers)
        frames.append(summarise_classification(name, per_item, len(classnames)))
        items.append(per_item.assign(benchmark=name, suite=DATASETS[name]["suite"]))
        print(f"zero-shot {name}: {len(per_item)} images scored")
    summary = (pd.concat(frames, ignore_index=True) if frames else
               pd.DataFrame(columns=["benchmark", "suite", "metric", "value", "n_items", "n_items_total", "incomplete"]))
    per_item = pd.concat(items, ignore_index=True) if items else pd.DataFrame(columns=["benchmark", "suite", "label"])
    label_with_run(summary, per_item, checkpoint["summary"])
    summary = summary[SCORE_COLUMNS]
    write_text(per_item_csv, per_item.to_csv(index=False))
    write_text(skips_csv, pd.DataFrame(skips, columns=["benchmark", "suite", "reason"]).to_csv(index=False))
    write_text(out_csv, summary.to_csv(index=False))
    print(summary.to_string())
    return summary


__all__ = ["DATASETS", "DatasetMissing", "class_folder_dataset", "open_dataset", "zero_shot_classify",
           "summarise_classification", "evaluate_classification", "CIFAR10_CLASSNAMES", "CIFAR100_CLASSNAMES",
           "CIFAR_TEMPLATES"]
