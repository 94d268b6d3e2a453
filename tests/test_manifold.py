"""The manifold check (dualclip/eval/manifold.py): Fréchet distance, the dual-vs-original
probe and the cosine distance on hand-built embeddings, the table per backend and |S|,
and its section in the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dualclip.eval.manifold import (
    ALL_SIZES,
    balanced_accuracy,
    cosine_distances,
    frechet_distance,
    manifold_rows,
    probe_accuracy,
)


def gaussian_sample(mean, covariance, n, seed):
    """n points whose sample mean and covariance are exactly ``mean`` and ``covariance``
    (whitened, then coloured): the Fréchet distance of two such sets is the closed form."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(mean)))
    x -= x.mean(0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T
    return x @ np.linalg.cholesky(covariance).T + mean


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    # diagonal: d² = |μa − μb|² + Σ (σa − σb)²
    a = gaussian_sample(np.array([0.0, 0.0, 0.0]), np.diag([1.0, 4.0, 9.0]), 500, seed=0)
    b = gaussian_sample(np.array([3.0, 0.0, -1.0]), np.diag([4.0, 1.0, 9.0]), 700, seed=1)
    expected = (9 + 0 + 1) + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 3) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_a_rotated_covariance():
    # same covariance eigenvalues, rotated by 90°, means equal: Σa = diag(1, 4), Σb = diag(4, 1)
    # Tr(Σa + Σb − 2 (Σa Σb)^½) = 10 − 2·(2 + 2) = 2; a full (non-diagonal) case too
    a = gaussian_sample(np.zeros(2), np.diag([1.0, 4.0]), 300, seed=2)
    b = gaussian_sample(np.zeros(2), np.diag([4.0, 1.0]), 300, seed=3)
    assert frechet_distance(a, b) == pytest.approx(2.0, rel=1e-9)
    rotation = np.array([[np.cos(0.7), -np.sin(0.7)], [np.sin(0.7), np.cos(0.7)]])
    # rotating both sets together changes nothing
    assert frechet_distance(a @ rotation.T, b @ rotation.T) == pytest.approx(2.0, rel=1e-9)


def test_frechet_distance_of_a_set_with_itself_is_zero_and_rejects_bad_shapes():
    x = np.random.default_rng(4).normal(size=(50, 8))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError, match="frechet_distance"):
        frechet_distance(x, x[:, :4])


def test_probe_is_at_chance_on_identical_distributions():
    rng = np.random.default_rng(5)
    originals, duals = rng.normal(size=(600, 8)), rng.normal(size=(1200, 8))
    images = np.arange(600)
    accuracy = probe_accuracy(originals, duals, images, np.repeat(images, 2), seed=0)
    assert 42 <= accuracy <= 58


def test_probe_tells_separated_distributions_apart():
    rng = np.random.default_rng(6)
    originals = rng.normal(size=(200, 8))
    duals = rng.normal(size=(200, 8)) + np.array([8.0] + [0.0] * 7)  # Bayes error Φ(−4) ≈ 0.003%
    images = np.arange(200)
    assert probe_accuracy(originals, duals, images, images, seed=0) >= 98


def test_probe_on_too_few_images_is_nan():
    rng = np.random.default_rng(7)
    assert np.isnan(probe_accuracy(rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), [0, 1, 2], [0, 1, 2]))


def test_balanced_accuracy_ignores_class_sizes():
    # all predicted "dual": 9 of 10 rows right, but chance on balance
    assert balanced_accuracy(np.array([0] + [1] * 9), np.ones(10, dtype=int)) == pytest.approx(0.5)


def test_cosine_distances_pair_rows():
    a = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    b = np.array([[3.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])
    assert cosine_distances(a, b) == pytest.approx([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="paired rows"):
        cosine_distances(a, b[:2])


def test_manifold_rows_per_backend_and_size():
    """Two backends: 'far' duals sit far from their originals, 'near' duals are the
    originals plus a little noise; one row per (backend, |S|) and one pooling all sizes."""
    rng = np.random.default_rng(8)
    rows, features = [], []
    for backend, shift in (("near", 0.0), ("far", 3.0)):
        for image in range(40):
            original = rng.normal(size=6)
            rows.append({"image": f"{backend}-{image}", "kind": "original", "backend": backend, "n_removed": 0})
            features.append(original)
            for n_removed in (1, 1, 2):
                rows.append({"image": f"{backend}-{image}", "kind": "dual", "backend": backend, "n_removed": n_removed})
                features.append(original + 0.01 * rng.normal(size=6) + shift * n_removed)
    table = manifold_rows(np.array(features), pd.DataFrame(rows), seed=0).set_index(["backend", "n_removed"])
    assert sorted(table.index) == sorted([(b, s) for b in ("far", "near") for s in ("1", "2", ALL_SIZES)])
    assert table.loc[("near", "1"), "n_images"] == 40 and table.loc[("near", "1"), "n_duals"] == 80
    assert table.loc[("near", ALL_SIZES), "n_duals"] == 120
    # near duals: indistinguishable up to noise, tiny cosine distance, Fréchet near its sampling floor
    assert table.loc[("near", "1"), "cosine_distance"] < 1e-3
    assert table.loc[("near", "1"), "frechet_distance"] < table.loc[("near", "1"), "frechet_floor"]
    # far duals: the probe separates them, the distances grow with |S|
    assert table.loc[("far", "2"), "probe_accuracy"] >= 95
    assert table.loc[("far", "2"), "frechet_distance"] > table.loc[("far", "1"), "frechet_distance"] > 1
    assert table.loc[("far", "1"), "cosine_distance"] > table.loc[("near", "1"), "cosine_distance"]
    assert table["cosine_distance_between_originals"].between(0.5, 1.5).all()  # random directions: ~1


# ------------------------------------------------------------------ from the workflow's files, and the report


def write_study(root: Path, n_images: int = 10, shard_size: int = 4) -> tuple[list[str], list[str], str]:
    """Training images in shards as the data and inpaint stages write them (each slot's
    duals.json names its backend; slot 3 has no dual), and a randomly initialised
    dualclip-tiny checkpoint as the train stage writes it."""
    import torch

    from dualclip.io import write_json, write_png
    from dualclip.train.models import create_model

    rng = np.random.default_rng(0)
    data, inpaint = [], []
    for shard in range(-(-n_images // shard_size)):
        for stage, manifests in (("data", data), ("inpaint", inpaint)):
            write_json(root / stage / "train" / str(shard) / "manifest.json", {"files": []})
            manifests.append(str(root / stage / "train" / str(shard) / "manifest.json"))
    for index in range(n_images):
        shard, slot = divmod(index, shard_size)
        write_png(root / "data" / "train" / str(shard) / f"{slot}.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        folder = root / "inpaint" / "train" / str(shard) / str(slot)
        subsets = [] if index == 3 else [[0], [1], [0, 1]]
        for subset in subsets:
            write_png(folder / ("drop-" + "+".join(map(str, subset)) + ".png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        write_json(folder / "duals.json", {"image_id": f"train-{shard:04d}-{slot:03d}", "backend": "opencv",
                                           "duals": [{"subset": s, "file": "drop-" + "+".join(map(str, s)) + ".png"}
                                                     for s in subsets]})
    model, _, _ = create_model("dualclip-tiny", None)
    checkpoint = root / "model.pt"
    torch.save({"config": {"model": {"name": "dualclip-tiny", "pretrained": None}}, "model": model.state_dict(),
                "summary": {"method": "baseline", "seed": 0, "n_train": n_images, "n_samples": n_images, "code_version": "test"}}, checkpoint)
    return data, inpaint, str(checkpoint)


def test_measure_checkpoint_writes_the_table(tmp_path):
    from dualclip.eval.manifold import measure_checkpoint

    data, inpaint, checkpoint = write_study(tmp_path)
    out = tmp_path / "manifold.csv"
    measure_checkpoint(checkpoint, data, inpaint, n_images=10, shard_size=4, out_file=str(out), device="cpu")
    table = pd.read_csv(out, dtype={"n_removed": str}).set_index("n_removed")
    assert list(table.index) == ["1", "2", ALL_SIZES]
    # 9 of the 10 images have duals (slot 3 has none): 2 single removals and 1 double each
    assert table.loc["1", "n_images"] == 9 and table.loc["1", "n_duals"] == 18 and table.loc["2", "n_duals"] == 9
    assert table.loc[ALL_SIZES, "n_duals"] == 27
    assert (table[["method", "seed", "n_train", "backend", "code_version"]].drop_duplicates().values.tolist()
            == [["baseline", 0, 10, "opencv", "test"]])
    assert table["frechet_distance"].notna().all() and (table["cosine_distance"] > 0).all()


def test_no_dual_in_the_measured_images_is_a_clear_error(tmp_path):
    from dualclip.eval.manifold import dual_rows
    from dualclip.io import write_json

    data, inpaint, _ = write_study(tmp_path, n_images=4)
    for slot in range(3):  # slot 3 has no dual already
        write_json(tmp_path / "inpaint" / "train" / "0" / str(slot) / "duals.json", {"image_id": f"x{slot}", "duals": []})
    with pytest.raises(ValueError, match="eval.manifold_images: none of the first 4 training images"):
        dual_rows(data, inpaint, n_images=4, shard_size=4)


def test_data_size_figure_gives_each_policy_its_own_colour(monkeypatch):
    """(issue 15's report edits, beside the manifold section) ours@singletons is a run of its own:
    its line in the data-size figure must not share ours' colour nor fall back to grey."""
    import matplotlib.colors

    from dualclip import report

    figures = []
    monkeypatch.setattr(report, "figure_png", lambda fig: figures.append(fig) or b"")
    rows = [{"method": method, "n_train": n, "seed": 0, "benchmark": "synthetic", "suite": "sc_add_obj",
             "metric": "accuracy", "value": value}
            for method, n, value in (("baseline", 100, 50.0), ("baseline", 200, 60.0), ("ours", 100, 70.0),
                                     ("ours@singletons", 100, 65.0), ("ours@sample_k", 100, 62.0))]
    report.data_size_figure(pd.DataFrame(rows), default_n=100)
    lines = {line.get_label(): matplotlib.colors.to_hex(line.get_color()) for line in figures[0].axes[0].get_lines()
             if line.get_label() in ("ours", "ours@singletons", "ours@sample_k")}
    assert len(lines) == 3 and len(set(lines.values())) == 3
    assert matplotlib.colors.to_hex("grey") not in lines.values()
