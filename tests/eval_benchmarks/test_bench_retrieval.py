"""Karpathy-format loader and Recall@K from similarity matrices."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench_helpers import make_images
from dualclip.eval.benchmarks import load_karpathy, retrieval_recall, similarity_matrix, summarise_retrieval


def _links(n_img, per=5):
    img2txt = [list(range(i * per, (i + 1) * per)) for i in range(n_img)]
    txt2img = [i for i in range(n_img) for _ in range(per)]
    return img2txt, txt2img


def test_recall_on_hand_built_matrix():
    n_img, per = 12, 5
    img2txt, txt2img = _links(n_img, per)
    rng = np.random.default_rng(0)
    sim = rng.uniform(0.0, 0.5, size=(n_img, n_img * per))
    # i2t: image 0 hits at rank 0; image 1's best caption at rank 3 (3 wrong above it);
    # image 2's best caption at rank 7; image 3 ties with a wrong caption -> rank 1.
    sim[0, img2txt[0][2]] = 0.99
    sim[1, img2txt[1][4]] = 0.90
    sim[1, [img2txt[5][0], img2txt[6][0], img2txt[7][0]]] = 0.95
    sim[2, img2txt[2][0]] = 0.80
    sim[2, [t for i in range(4, 11) for t in img2txt[i][:1]]] = 0.85
    sim[3, img2txt[3][1]] = 0.70
    sim[3, img2txt[9][3]] = 0.70
    for i in range(4, n_img):   # the rest: own captions far below everyone else
        sim[i, img2txt[i]] = -1.0
    rec = retrieval_recall(sim, img2txt, txt2img)
    # ranks: img0 0, img1 3, img2 7, img3 1 (tie is wrong), img4..11 >= 55-... (misses)
    assert rec["i2t_R@1"] == pytest.approx(100 * 1 / 12)
    assert rec["i2t_R@5"] == pytest.approx(100 * 3 / 12)
    assert rec["i2t_R@10"] == pytest.approx(100 * 4 / 12)
    # t2i by brute force with tie-pessimistic ranks
    hits = {1: 0, 5: 0, 10: 0}
    for t, i in enumerate(txt2img):
        rank = sum(sim[j, t] >= sim[i, t] for j in range(n_img) if j != i)
        for k in hits:
            hits[k] += rank < k
    for k, h in hits.items():
        assert rec[f"t2i_R@{k}"] == pytest.approx(100 * h / len(txt2img))
    assert rec["rsum"] == pytest.approx(sum(v for k, v in rec.items() if k != "rsum"))
    out = summarise_retrieval(rec, n_img, len(txt2img))
    assert list(out.columns) == ["benchmark", "suite", "metric", "value", "n_items"]
    assert out.set_index("metric").loc["t2i_R@5", "n_items"] == 60
    with pytest.raises(ValueError, match="similarity matrix is"):
        retrieval_recall(sim[:, :10], img2txt, txt2img)


def test_perfect_and_tied_matrices():
    img2txt, txt2img = _links(3, 5)
    perfect = np.full((3, 15), 0.1)
    for i, ts in enumerate(img2txt):
        perfect[i, ts] = 0.9
    rec = retrieval_recall(perfect, img2txt, txt2img, ks=(1,))
    assert rec == {"i2t_R@1": 100.0, "t2i_R@1": 100.0, "rsum": 200.0}
    tied = np.zeros((3, 15))
    rec = retrieval_recall(tied, img2txt, txt2img, ks=(1, 5, 10, 20))
    assert rec["i2t_R@1"] == 0.0 and rec["i2t_R@10"] == 0.0 and rec["i2t_R@20"] == 100.0
    assert rec["t2i_R@1"] == 0.0 and rec["t2i_R@5"] == 100.0


def test_load_karpathy_excerpt(fixtures_dir, tmp_path, tiny_clip):
    ann = fixtures_dir / "karpathy" / "coco_karpathy_test.handmade.json"
    raw = json.loads(ann.read_text())
    make_images(tmp_path, [r["image"] for r in raw], size=(40, 40))
    ds = load_karpathy(ann, tmp_path)
    assert len(ds.image_paths) == 3 and len(ds.texts) == 15
    assert ds.img2txt == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]
    assert ds.txt2img == [0] * 5 + [1] * 5 + [2] * 5
    assert ds.texts[7] == "a puppy curled up asleep on the sofa in a living room"
    assert len(ds.texts[10].split()) == 30
    short = load_karpathy(ann, tmp_path, captions_per_image=2)
    assert short.img2txt == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ValueError, match="fewer than captions_per_image=6"):
        load_karpathy(ann, tmp_path, captions_per_image=6)
    (tmp_path / raw[1]["image"]).unlink()
    part = load_karpathy(ann, tmp_path)
    assert len(part.image_paths) == 2 and part.txt2img == [0] * 5 + [1] * 5
    assert [s.item_id for s in part.skipped_items] == ["1"]
    none = load_karpathy(ann, None)
    assert none.image_paths == [] and none.skipped_pieces[0].n_items == 3
    model, preprocess, tokenizer = tiny_clip
    sim = similarity_matrix(model, preprocess, tokenizer, part, batch_size=4)
    assert sim.shape == (2, 10) and np.all(np.abs(sim) <= 1.0 + 1e-6)
    rec = retrieval_recall(sim, part.img2txt, part.txt2img)
    assert rec["i2t_R@10"] == 100.0 and rec["t2i_R@10"] == 100.0  # only 2 images, 10 texts
