"""ARO COCO/Flickr-Order: pre_caption and the four word-order perturbations."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from bench_helpers import make_images
from dualclip.eval.benchmarks import TextShuffler, load_order, pre_caption
from dualclip.eval.benchmarks.aro import ADJ_TAGS, NOUN_TAGS, load_spacy, word_tokens

CAPTIONS = [
    "A red bus is parked next to a tall building.",
    "The dog's head rests on a striped pillow!",
    "A puppy curled up (asleep) on the sofa in a living room.",
    "Two young men playing frisbee at night on a large green sports field",
    "A brown and white dog naps near a sunny window: it looks calm.",
    "An old man with a grey beard reads a thick book beside a small wooden table.",
]


@pytest.fixture(scope="module")
def nlp():
    return load_spacy()


def test_pre_caption():
    assert pre_caption("A man (smiling), riding a horse!!") == "a man smiling , riding a horse"
    assert pre_caption("  Cats:  two;  dogs~ one.\n") == "cats two dogs one"
    assert pre_caption("it's a \"big\" #1 dog*") == "it's a big 1 dog"
    long = " ".join(f"w{i}" for i in range(40)) + "."
    assert pre_caption(long).split() == [f"w{i}" for i in range(30)]
    assert pre_caption(long, max_words=5) == "w0 w1 w2 w3 w4"


def test_perturbations_are_deterministic_under_a_seed(nlp):
    a = TextShuffler(seed=1, nlp=nlp).perturb_many(CAPTIONS)
    b = [TextShuffler(seed=1, nlp=nlp).perturb(c) for c in CAPTIONS[:1]]
    again = TextShuffler(seed=1, nlp=nlp).perturb_many(CAPTIONS)
    other = TextShuffler(seed=2, nlp=nlp).perturb_many(CAPTIONS)
    assert a == again and a[0] == b[0]
    assert a != other
    # Global random state does not leak in.
    np.random.seed(123)
    random.seed(123)
    assert TextShuffler(seed=1, nlp=nlp).perturb_many(CAPTIONS) == a


def test_each_perturbation_is_a_permutation_of_the_words(nlp):
    sh = TextShuffler(seed=7, nlp=nlp)
    changed = [0, 0, 0, 0]
    for doc in nlp.pipe(CAPTIONS):
        toks = word_tokens(doc)
        ref = pre_caption(" ".join(toks)).split()
        perturbed = sh.perturb_doc(doc)
        assert len(perturbed) == 4
        for k, p in enumerate(perturbed):
            assert sorted(pre_caption(p).split()) == sorted(ref)
            changed[k] += p.split() != toks
        # Structure of each perturbation (spaCy tokens of these captions have no spaces).
        tags = [t.tag_ for t in doc]
        na, allbut, within, trig = (p.split(" ") for p in perturbed)
        for i, tag in enumerate(tags):
            if tag not in NOUN_TAGS | ADJ_TAGS:
                assert na[i] == toks[i]          # only nouns/adjectives move ...
            else:
                assert allbut[i] == toks[i]      # ... and in the other one they stay
        nouns = [i for i, tag in enumerate(tags) if tag in NOUN_TAGS]
        assert sorted(na[i] for i in nouns) == sorted(toks[i] for i in nouns)
        for g in range(0, len(toks), 3):
            assert sorted(within[g:g + 3]) == sorted(toks[g:g + 3])
        groups = [tuple(toks[g:g + 3]) for g in range(0, len(toks), 3)]
        # shuffle_trigrams keeps every trigram intact as a unit
        joined = " ".join(trig)
        assert all(" ".join(grp) in joined for grp in groups)
    assert all(c >= 3 for c in changed), changed


def test_pos_shuffles_follow_upstream_random_stream(nlp):
    """Same seed and caption order -> the same draws as ARO's global-RNG implementation."""
    np.random.seed(1)
    expected = []
    for doc in nlp.pipe(CAPTIONS):
        text = np.array([t.text for t in doc])
        nouns = [i for i, t in enumerate(doc) if t.tag_ in NOUN_TAGS]
        adjs = [i for i, t in enumerate(doc) if t.tag_ in ADJ_TAGS]
        text[nouns] = np.random.permutation(text[nouns])
        text[adjs] = np.random.permutation(text[adjs])
        first = " ".join(text)
        text = np.array([t.text for t in doc])
        other = np.array([t.tag_ not in NOUN_TAGS | ADJ_TAGS for t in doc])
        text[other] = np.random.permutation(text[other])
        expected.append([first, " ".join(text)])
    sh = TextShuffler(seed=1, nlp=nlp)
    got = [[sh.shuffle_nouns_and_adj(d), sh.shuffle_allbut_nouns_and_adj(d)]
           for d in nlp.pipe(CAPTIONS)]
    assert got == expected


def test_load_order_on_karpathy_excerpt(fixtures_dir, tmp_path, nlp):
    ann = fixtures_dir / "karpathy" / "coco_karpathy_test.handmade.json"
    raw = json.loads(ann.read_text())
    make_images(tmp_path, [r["image"] for r in raw[:2]])   # third image missing
    res = load_order(ann, tmp_path, benchmark="coco_order", nlp=nlp)
    assert len(res) == 10 and len(res.skipped_items) == 5
    assert {s.item_id for s in res.skipped_items} == {f"2/{j}" for j in range(5)}
    it = res.items[6]
    assert it.item_id == "1/1" and it.suite == "test" and it.benchmark == "coco_order"
    assert it.positive == "the dog's head rests on a striped pillow"
    assert len(it.negatives) == 4
    assert it.image_path == tmp_path / raw[1]["image"]
    # Negatives do not depend on which images exist (perturbed in file order first).
    make_images(tmp_path, [raw[2]["image"]])
    full = load_order(ann, tmp_path, benchmark="coco_order", nlp=nlp)
    assert len(full) == 15
    assert [i.negatives for i in full.items[:10]] == [i.negatives for i in res.items]
    long_item = full.items[10]
    assert len(long_item.positive.split()) == 30
    assert all(len(n.split()) <= 30 for n in long_item.negatives)
    with pytest.raises(ValueError, match="benchmark must be one of"):
        load_order(ann, tmp_path, benchmark="order")


def test_trigram_tokens_are_nltks_word_tokenize_without_any_download(nlp, tmp_path, monkeypatch):
    """As upstream (nltk.word_tokenize), on captions with hyphens and quotes, with nltk's data
    path pointed at an empty folder: preserve_line=True needs no punkt download."""
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    caps = ['A "well-known" man\'s red-white kite.', "Two dogs -- one black, one tan -- play 'fetch'."]
    docs = list(nlp.pipe(caps))
    assert word_tokens(docs[0]) == ["A", "``", "well-known", "''", "man", "'s", "red-white", "kite", "."]
    assert word_tokens(docs[1]) == ["Two", "dogs", "--", "one", "black", ",", "one", "tan", "--", "play", "'",
                                    "fetch", "'", "."]
    # spaCy would split "red-white" into three tokens: the trigrams follow nltk's, not spaCy's
    assert [t.text for t in docs[0]].count("-") == 2
    sh = TextShuffler(seed=3, nlp=nlp)
    for doc in docs:
        toks = word_tokens(doc)
        _, _, within, trig = sh.perturb_doc(doc)
        assert sorted(within.split(" ")) == sorted(toks) and sorted(trig.split(" ")) == sorted(toks)
        groups = [" ".join(toks[g:g + 3]) for g in range(0, len(toks), 3)]
        assert all(group in trig for group in groups)
