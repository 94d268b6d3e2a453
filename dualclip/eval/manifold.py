"""Do dual images lie near the data manifold? (issue 15, the seed's own check)

The trained baseline, which never saw a dual image, embeds the training originals and
their dual images; per inpaint backend and per number of removed components |S| this
module measures:

* the Fréchet distance between the two embedding sets (the FID formula on CLIP image
  embeddings), beside a sampling floor: the distance between two random halves of the
  originals, which is what the same number of images scores without any inpainting;
* the held-out balanced accuracy of a logistic-regression probe that tells duals from
  originals (50% = indistinguishable; near 100% = a model can learn the inpainting
  artefact instead of the missing object; the ``image_side_sham`` suite is the
  behavioural counterpart);
* the mean cosine distance from each dual to its own original, beside the mean distance
  between two different originals (the scale of the embedding space).

The measures are pure functions of embeddings (tested on hand-built data);
:func:`measure_checkpoint` embeds the images with :func:`dualclip.eval.synthetic.encode`.
Nothing here imports numpy, pandas or torch at module level: the workflow imports this file
(``DEFAULT_IMAGES``) while it plans.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

DEFAULT_IMAGES = 300  # eval.manifold_images' default: originals measured (with all their duals)
MIN_PROBE_IMAGES = 8  # a probe on fewer images (4 per split) says nothing: reported as NaN
ALL_SIZES = "all"  # the n_removed of the row that pools every |S|


# ------------------------------------------------------------------ the three measures


def _covariance(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.atleast_2d(np.cov(x, rowvar=False))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    import numpy as np

    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and ``b``:
    |μa − μb|² + Tr(Σa + Σb − 2 (Σa^½ Σb Σa^½)^½).

    Σa^½ Σb Σa^½ is symmetric and has the eigenvalues of Σa Σb, so its trace square root
    comes from ``eigvalsh``: no complex ``sqrtm`` and no scipy."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"frechet_distance: needs two sets of at least 2 vectors of one dimension, got {a.shape} and {b.shape}")
    cov_a, cov_b = _covariance(a), _covariance(b)
    root_a = _psd_sqrt(cov_a)
    product = root_a @ cov_b @ root_a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)).sum()
    mean_gap = a.mean(0) - b.mean(0)
    return float(max(0.0, mean_gap @ mean_gap + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt))


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 − cos between row i of ``a`` and row i of ``b``."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cosine_distances: paired rows needed, got {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return 1.0 - (a * b).sum(1) / np.maximum(norms, 1e-12)


def sigmoid(t: np.ndarray) -> np.ndarray:
    import numpy as np

    return 0.5 * (1.0 + np.tanh(0.5 * t))  # no overflow for large |t|


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = 1.0, max_steps: int = 50):
    """L2-regularised logistic regression with classes weighted to equal total weight
    (scikit-learn's objective with ``C=c, class_weight="balanced"``: C · Σ wᵢ lossᵢ + ½|w|²,
    bias unpenalised), fitted by Newton's method on standardised features: the objective
    is strictly convex and the embeddings have ~100 dimensions, so a few exact steps beat
    first-order iterations. Returns a function x -> P(class 1)."""
    import numpy as np

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    mean, scale = x.mean(0), np.maximum(x.std(0), 1e-12)
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])  # last column: the bias
    positives = y.sum()
    sample_weight = c * np.where(y > 0, len(y) / (2 * positives), len(y) / (2 * (len(y) - positives)))
    penalty = np.ones(z.shape[1])
    penalty[-1] = 0.0

    def objective(theta: np.ndarray) -> float:
        logits = z @ theta
        return float(sample_weight @ (np.logaddexp(0.0, logits) - y * logits) + 0.5 * penalty @ theta**2)

    theta = np.zeros(z.shape[1])
    for _ in range(max_steps):
        p = sigmoid(z @ theta)
        gradient = z.T @ (sample_weight * (p - y)) + penalty * theta
        hessian = (z * (sample_weight * p * (1 - p))[:, None]).T @ z + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-10 * np.eye(len(theta)), gradient)
        # halve the Newton step until the objective falls (Newton alone may overshoot far from the optimum)
        size, current = 1.0, objective(theta)
        while objective(theta - size * step) > current and size > 1e-6:
            size /= 2
        theta = theta - size * step
        if np.abs(size * step).max() < 1e-8:
            break

    def predict(new: np.ndarray) -> np.ndarray:
        return sigmoid(((np.asarray(new, dtype=np.float64) - mean) / scale) @ theta[:-1] + theta[-1])

    return predict


def balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    """Mean of the two classes' recalls: 50% at chance whatever the class sizes (an image
    has one original but up to N single-removal duals)."""
    import numpy as np

    y, predicted = np.asarray(y), np.asarray(predicted)
    return float(np.mean([(predicted[y == label] == label).mean() for label in (0, 1)]))


def probe_accuracy(originals: np.ndarray, duals: np.ndarray, original_groups, dual_groups, seed: int = 0,
                   test_fraction: float = 0.5) -> float:
    """Held-out balanced accuracy (%) of a logistic-regression probe telling duals (1) from
    originals (0). The split is by image (``*_groups``: the image each row comes from), so a
    dual is never tested against its own original seen in training. NaN when fewer than
    MIN_PROBE_IMAGES images take part."""
    import numpy as np

    original_groups, dual_groups = np.asarray(original_groups), np.asarray(dual_groups)
    images = np.unique(np.concatenate([original_groups, dual_groups]))
    if len(images) < MIN_PROBE_IMAGES or len(originals) == 0 or len(duals) == 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    test_images = rng.permutation(images)[: max(1, int(round(len(images) * test_fraction)))]
    x = np.concatenate([originals, duals])
    y = np.concatenate([np.zeros(len(originals)), np.ones(len(duals))])
    test = np.isin(np.concatenate([original_groups, dual_groups]), test_images)
    if len(np.unique(y[test])) < 2 or len(np.unique(y[~test])) < 2:
        return float("nan")
    predict = fit_logistic(x[~test], y[~test])
    return 100.0 * balanced_accuracy(y[test], (predict(x[test]) >= 0.5).astype(int))


# ------------------------------------------------------------------ the table


def manifold_rows(features: np.ndarray, rows, seed: int = 0):
    """The manifold table from embeddings and their rows.

    ``rows`` (a DataFrame, one per embedding) has ``image`` (the original's id),
    ``kind`` ("original" or "dual"), ``backend`` (the inpaint backend that made the dual,
    that of its duals for an original) and ``n_removed`` (|S|; 0 for an original). One row
    per backend and |S|, plus one pooling every |S| (``n_removed`` "all")."""
    import numpy as np
    import pandas as pd

    features = np.asarray(features, dtype=np.float64)
    rows = rows.reset_index(drop=True)
    if len(rows) != len(features):
        raise ValueError(f"manifold_rows: {len(features)} embeddings for {len(rows)} rows")
    out = []
    for backend, part in rows.groupby("backend", sort=True):
        originals = part[part["kind"] == "original"]
        position = dict(zip(originals["image"], originals.index))
        duals = part[part["kind"] == "dual"]
        sizes = sorted(duals["n_removed"].unique())
        for size in [*sizes, ALL_SIZES]:
            chosen = duals if size == ALL_SIZES else duals[duals["n_removed"] == size]
            images = list(dict.fromkeys(chosen["image"]))  # the originals of these duals
            own = [position[image] for image in images]
            rng = np.random.default_rng(seed)
            halves = rng.permutation(own)
            floor = (frechet_distance(features[halves[: len(halves) // 2]], features[halves[len(halves) // 2:]])
                     if len(halves) >= 4 else float("nan"))
            # the scale of the space: each original against another original of the set
            others = np.roll(np.asarray(own), 1)
            between = (cosine_distances(features[own], features[others]).mean() if len(own) >= 2 else float("nan"))
            enough = len(own) >= 2 and len(chosen) >= 2
            out.append({
                "backend": backend, "n_removed": str(size), "n_images": len(own), "n_duals": len(chosen),
                "frechet_distance": frechet_distance(features[own], features[chosen.index]) if enough else float("nan"),
                "frechet_floor": floor,
                "probe_accuracy": probe_accuracy(features[own], features[chosen.index], images,
                                                 chosen["image"].to_numpy(), seed=seed),
                "cosine_distance": float(cosine_distances(features[chosen.index],
                                                          features[[position[i] for i in chosen["image"]]]).mean()),
                "cosine_distance_between_originals": float(between),
            })
    return pd.DataFrame(out)


# ------------------------------------------------------------------ from the workflow's files


def dual_rows(data_manifests: list[str], inpaint_manifests: list[str], n_images: int, shard_size: int):
    """One row per original that has dual images and per dual image of the first
    ``n_images`` training images: image id, file, kind, backend, n_removed. Every dual the
    inpaint stage made counts (the power set; a subset policy or the filter chooses among
    them only at train time)."""
    import pandas as pd

    from dualclip.io import read_json
    from dualclip.workflow import per_image_files

    images = per_image_files(data_manifests, n_images, shard_size, "{slot}.png")
    records = per_image_files(inpaint_manifests, n_images, shard_size, "{slot}/duals.json")
    rows = []
    for image, record_file in zip(images, records, strict=True):
        record = read_json(record_file)
        if not record.get("duals"):
            continue  # nothing found, so no dual image
        backend = record.get("backend", "unknown")
        rows.append({"image": record["image_id"], "file": image, "kind": "original", "backend": backend, "n_removed": 0})
        rows += [{"image": record["image_id"], "file": str(Path(record_file).parent / dual["file"]), "kind": "dual",
                  "backend": backend, "n_removed": len(dual["subset"])} for dual in record["duals"]]
    if not rows:
        raise ValueError(f"eval.manifold_images: none of the first {n_images} training images has a dual image; "
                         "raise eval.manifold_images or check the detect stage's records")
    return pd.DataFrame(rows)


def measure_checkpoint(model_file: str, data_manifests: list[str], inpaint_manifests: list[str], n_images: int,
                       shard_size: int, out_file: str, device: str = "auto", batch_size: int = 256, seed: int = 0):
    """Embed the first ``n_images`` training originals and their duals with a trained run
    and write the manifold table (CSV) with the run that measured it."""
    from dualclip.eval.embed import embed_images
    from dualclip.io import write_text
    from dualclip.runtime import resolve_device
    from dualclip.train.models import load_checkpoint_model

    rows = dual_rows(data_manifests, inpaint_manifests, n_images, shard_size)
    model, preprocess, _, checkpoint = load_checkpoint_model(model_file, resolve_device(device))
    features = embed_images(model, preprocess, list(rows["file"]), resolve_device(device), batch_size)
    table = manifold_rows(features.numpy(), rows, seed=seed)
    from dualclip.eval import run_size

    run = checkpoint["summary"]
    for column, value in (("seed", run["seed"]), ("n_train", run_size(run)), ("method", run["method"])):
        table.insert(0, column, value)
    table["code_version"] = run.get("code_version")
    write_text(out_file, table.to_csv(index=False))
    print(table.to_string())
    return table


# ------------------------------------------------------------------ the report's table

DISPLAY_COLUMNS = {
    "backend": "inpaint backend", "n_removed": "|S| removed", "n_images": "originals", "n_duals": "duals",
    "frechet_distance": "Fréchet distance", "frechet_floor": "Fréchet floor (originals, half vs half)",
    "probe_accuracy": "probe accuracy % (50 = indistinguishable)", "cosine_distance": "cosine distance to own original",
    "cosine_distance_between_originals": "cosine distance between originals",
}


def display_table(table_files: list[str]):
    """The report's manifold table: one row per measuring run, backend and |S|, rounded;
    None when the check did not run (no file)."""
    import pandas as pd

    if not table_files:
        return None
    table = pd.concat([pd.read_csv(path, dtype={"n_removed": str}) for path in table_files], ignore_index=True)
    table.insert(0, "measured by", [f"{m} (n={n}, seed {s})" for m, n, s in zip(table["method"], table["n_train"], table["seed"])])
    table = table[["measured by", *DISPLAY_COLUMNS]].rename(columns=DISPLAY_COLUMNS)
    decimals = {"frechet_distance": 3, "frechet_floor": 3, "probe_accuracy": 1, "cosine_distance": 3,
                "cosine_distance_between_originals": 3}
    return table.round({DISPLAY_COLUMNS[column]: places for column, places in decimals.items()})
