"""report: one self-contained HTML ablation report, written by the last rule of the DAG.

Results table (mean ± std over seeds), paired per-seed differences between chosen
runs (e.g. ours − ours_shuf), a seaborn bar chart per suite with the methods
side by side (blind scores beside the real ones), training curves, the run table
(epochs, steps, images seen: the matched compute made visible), and a gallery of
training images with all their dual images and dual texts. The first screen
(:mod:`dualclip.report.overview`) answers the question: findings from the paired
differences, the data funnel and a compact method x suite table. The page is the
Jinja2 template ``report/report.html.j2``.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import yaml  # noqa: E402

from dualclip.eval.manifold import display_table  # noqa: E402
from dualclip.io import code_version, read_json, write_bytes, write_text  # noqa: E402
from dualclip.train.methods import method_rank  # noqa: E402  (the methods in report order)


def run_label(method: str, n_train: int, default_n: int) -> str:
    return method if int(n_train) == int(default_n) else f"{method} (n={n_train})"


def load_scores(score_files: list[str], default_n: int) -> pd.DataFrame:
    if not score_files:
        raise ValueError("nothing to report: no synthetic suites for this dataset and no `benchmarks:` section; "
                         "add benchmarks (see config/benchmarks_example.yaml)")
    scores = one_length_baseline(pd.concat([pd.read_csv(path) for path in score_files], ignore_index=True))
    scores["run"] = [LENGTH_RUN if m == "length" else run_label(m, n, default_n)
                     for m, n in zip(scores["method"], scores["n_train"])]
    return scores


LENGTH_RUN = "length (no model)"


def one_length_baseline(scores: pd.DataFrame) -> pd.DataFrame:
    """The length-only baseline (``length_*`` metrics: the shorter caption wins) needs no model:
    every run's benchmark CSV carries the same rows, kept once here as method ``length``."""
    is_length = scores["metric"].astype(str).str.startswith("length_")
    if not is_length.any():
        return scores
    length = scores[is_length].drop_duplicates(["benchmark", "suite", "metric"]).assign(method="length", seed=0)
    return pd.concat([scores[~is_length], length], ignore_index=True)


def with_literature(scores: pd.DataFrame) -> pd.DataFrame:
    """Published numbers for the real benchmarks we scored, as extra columns marked
    'literature: <model>' (never mixed into our runs' means)."""
    from dualclip.eval.benchmarks.literature import literature_results

    literature = literature_results()
    literature = literature[literature["benchmark"].isin(scores["benchmark"].unique())]
    if literature.empty:
        return scores
    literature = literature.assign(run=["literature: " + model for model in literature["model"]], seed=0)
    return pd.concat([scores, literature[["run", "seed", "benchmark", "suite", "metric", "value", "n_items"]]], ignore_index=True)


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """method x (suite, metric): mean ± std over seeds, as strings, plus the seed count."""
    grouped = scores.groupby(["run", "benchmark", "suite", "metric"], sort=False)["value"]
    stats = grouped.agg(["mean", "std", "count"]).reset_index()
    stats["cell"] = [
        f"{mean:.1f}" if count < 2 else f"{mean:.1f} ± {std:.1f}"
        for mean, std, count in zip(stats["mean"], stats["std"], stats["count"])
    ]
    if "n_items_total" in scores.columns:  # a real-benchmark piece scored on fewer items than its file holds
        counts = scores.groupby(["run", "benchmark", "suite", "metric"], sort=False)[["n_items", "n_items_total"]].max()
        counts = counts.reindex(pd.MultiIndex.from_frame(stats[["run", "benchmark", "suite", "metric"]]))
        stats["cell"] = [cell + (f" ({int(n):,}/{int(total):,} items)" if total > n else "")
                         for cell, n, total in zip(stats["cell"], counts["n_items"], counts["n_items_total"].fillna(0))]
    table = stats.pivot_table(index=["benchmark", "suite", "metric"], columns="run", values="cell", aggfunc="first", sort=False)
    runs = sorted(table.columns, key=lambda r: (method_rank(r.split(" ")[0]), r))
    return table[runs]


HEADLINE_METRICS = ("accuracy", "R@1", "top1")  # top1: zero-shot classification


def paired_differences(scores: pd.DataFrame, comparisons: list[list[str]]) -> tuple[pd.DataFrame, list[str]]:
    """Run a minus run b, seed by seed, on the headline metrics of every suite.

    Seeds pair the runs (same data order and initialisation), so the spread of the
    per-seed differences is the honest error bar of "a beats b"; ``a_ahead`` counts the
    seeds where a scored strictly higher. Returns the table and the comparisons that
    could not be made (a run that is not in this study).
    """
    headline = scores[scores["metric"].isin(HEADLINE_METRICS)]
    keys = ["benchmark", "suite", "metric", "seed"]
    rows, missing = [], []
    for a, b in comparisons:
        left = headline[headline["run"] == a].set_index(keys)["value"]
        right = headline[headline["run"] == b].set_index(keys)["value"]
        difference = (left - right).dropna()
        if difference.empty:
            missing.append(f"{a} − {b}")
            continue
        for (benchmark, suite, metric), values in difference.groupby(level=[0, 1, 2], sort=False):
            rows.append({"comparison": f"{a} − {b}", "benchmark": benchmark, "suite": suite, "metric": metric,
                         "mean_difference": values.mean(), "std": values.std(ddof=1) if len(values) > 1 else float("nan"),
                         "seeds": len(values), "a_ahead": int((values > 0).sum())})
    return pd.DataFrame(rows), missing


def paired_table(differences: pd.DataFrame) -> pd.DataFrame:
    """suite x comparison cells: 'mean ± std (a ahead on k of n seeds)'."""
    cells = [f"{m:+.1f}" + ("" if n < 2 else f" ± {sd:.1f}") + f" ({k}/{n})"
             for m, sd, n, k in zip(differences["mean_difference"], differences["std"], differences["seeds"], differences["a_ahead"])]
    return differences.assign(cell=cells).pivot_table(
        index=["benchmark", "suite", "metric"], columns="comparison", values="cell", aggfunc="first", sort=False)


def real_image_equivalents(scores: pd.DataFrame, default_n: int) -> pd.DataFrame:
    """Prices the other methods in real images: for each suite and each run on the default
    training set, the number of real images on which the baseline would score the same
    mean, interpolated linearly in log2(n) between the baseline's data sizes
    (``train.data_sizes``). Below the baseline's own score it is "≤ n", above its largest
    size "> n": the curve says nothing outside its range.
    """
    headline = scores[scores["metric"].isin(HEADLINE_METRICS) & scores["method"].notna()]
    keys = ["benchmark", "suite", "metric"]
    baseline = headline[headline["method"] == "baseline"].groupby([*keys, "n_train"])["value"].mean()
    if baseline.index.get_level_values("n_train").nunique() < 2:
        return pd.DataFrame()
    others = headline[(headline["method"] != "baseline") & (headline["n_train"] == default_n)]
    rows = []
    for (benchmark, suite, metric, method), score in others.groupby([*keys, "method"], sort=False)["value"].mean().items():
        if (benchmark, suite, metric) not in baseline.index.droplevel("n_train"):
            continue
        curve = baseline.loc[(benchmark, suite, metric)].sort_index()
        sizes, values = np.log2(curve.index.to_numpy(dtype=float)), curve.to_numpy()
        equivalent, label = float("nan"), f"> {int(curve.index[-1]):,}"
        if score <= values[0]:
            label = f"≤ {int(curve.index[0]):,}"
        else:
            for i in range(len(values) - 1):  # the first segment of the curve that reaches the score
                if values[i] < score <= values[i + 1]:
                    equivalent = 2 ** (sizes[i] + (score - values[i]) / (values[i + 1] - values[i]) * (sizes[i + 1] - sizes[i]))
                    label = f"{equivalent:,.0f}"
                    break
        rows.append({"benchmark": benchmark, "suite": suite, "metric": metric, "method": method, "score": score,
                     "baseline_images_equivalent": equivalent, "label": label})
    return pd.DataFrame(rows)


def data_size_figure(scores: pd.DataFrame, default_n: int) -> bytes:
    """The baseline's score against its number of real training images (mean ± sd over
    seeds), with every other method's mean on the default set as a horizontal line."""
    headline = scores[(scores["benchmark"] == "synthetic") & scores["metric"].isin(HEADLINE_METRICS)]
    suites = list(dict.fromkeys(headline["suite"]))
    columns = 4
    rows = -(-len(suites) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.8 * rows), squeeze=False)
    # one colour per method name as run (ours@singletons is not ours): keyed by the methods present
    others = sorted(set(headline.loc[headline["method"] != "baseline", "method"].dropna()), key=method_rank)
    palette = dict(zip(others, sns.color_palette("tab10" if len(others) <= 10 else "husl", len(others))))
    for axis, suite in zip(axes.flat, suites):
        data = headline[headline["suite"] == suite]
        base = data[data["method"] == "baseline"]
        sns.lineplot(data=base, x="n_train", y="value", ax=axis, marker="o", errorbar="sd", color="black", label="baseline")
        for method, values in data[(data["method"] != "baseline") & (data["n_train"] == default_n)].groupby("method"):
            axis.axhline(values["value"].mean(), color=palette.get(method, "grey"), lw=1, ls="--", label=method)
        axis.set_xscale("log", base=2)
        axis.set_title(suite)
        axis.set_xlabel("real training images")
        axis.set_ylabel("%")
        axis.legend().remove()
    for axis in list(axes.flat)[len(suites):]:
        axis.remove()
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return figure_png(fig)


def figure_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def suites_figure(scores: pd.DataFrame) -> bytes:
    data = scores[scores["metric"].isin(["accuracy", "blind_accuracy", "R@1"])
                  | ((scores["metric"] == "top1") & (scores["benchmark"] == "synthetic"))].copy()
    data["score"] = data["metric"].map({"accuracy": "image+text", "R@1": "image+text", "top1": "image+text",
                                        "blind_accuracy": "blind (mean image)"})
    runs = sorted(data["run"].unique(), key=lambda r: (method_rank(r.split(" ")[0]), r))
    grid = sns.catplot(data=data, kind="bar", x="run", y="value", hue="score", col="suite", col_wrap=4, order=runs,
                       errorbar="sd", height=2.6, aspect=1.25, sharey=False, palette=["#4477aa", "#cccccc"])
    grid.set_axis_labels("", "% correct")
    grid.set_titles("{col_name}")
    for axis in grid.axes.flat:
        axis.tick_params(axis="x", rotation=40)
        if not axis.get_title().startswith(("retrieval", "zs_")):
            axis.axhline(50, color="#aa3333", lw=0.8, ls="--")  # chance for the two-way suites
    return figure_png(grid.figure)


def with_planned_size(summary: dict, summary_file: str) -> dict:
    """A run summary with the training-set size the run was planned with (``n_train``: the
    ``n{n}`` folder of its run, train/<method>/n<n>/seed<seed>/summary.json), which names
    it; ``n_samples`` stays the images it trained on, fewer when some were skipped."""
    size_folder = Path(summary_file).parent.parent.name
    if not (size_folder.startswith("n") and size_folder[1:].isdigit()):
        raise ValueError(f"{summary_file}: not in a train/<method>/n<size>/seed<seed>/ run folder")
    return {**summary, "n_train": int(size_folder[1:])}


def curves_figure(log_files: list[str], summaries: list[dict], default_n: int) -> bytes:
    frames = []
    for path, summary in zip(log_files, summaries):
        log = pd.read_csv(path)
        log["run"] = run_label(summary["method"], summary["n_train"], default_n)
        log["seed"] = summary["seed"]
        frames.append(log)
    logs = pd.concat(frames, ignore_index=True)
    steps = logs[logs["loss"].notna()] if "loss" in logs else logs
    fig, axes = plt.subplots(1, 3, figsize=(16, 3.4))
    sns.lineplot(data=steps, x="step", y="loss", hue="run", ax=axes[0], errorbar=None, lw=1)
    axes[0].set_title("training loss (its meaning differs by method)")
    sns.lineplot(data=steps, x="images_seen", y="lr", hue="run", ax=axes[1], errorbar=None, lw=1, legend=False)
    axes[1].set_title("learning rate vs images seen")
    if "val_t2i_top1" in logs:
        val = logs[logs["val_t2i_top1"].notna()]
        sns.lineplot(data=val, x="step", y="val_t2i_top1", hue="run", ax=axes[2], errorbar="sd", marker="o", legend=False)
        axes[2].set_title("validation text->image top-1 (%), per epoch")
    return figure_png(fig)


def png_data_uri(data: bytes) -> str:
    """A PNG as a data: URI, so that the page carries its images (self-contained)."""
    return f"data:image/png;base64,{base64.b64encode(data).decode()}"


def gallery(results: Path, size: int, with_filter: bool) -> tuple[list[list[dict]], list[list[dict]]]:
    """Training images of shard 0 as rows of figures (the original, then every dual with its
    text, its failed checks and its filter rejections): the ``size`` images with the most
    duals, and up to ``size`` images with a dual text that failed its check or a dual image
    the filter rejected (empty when there is none)."""
    shard = "0"
    slot_files = [p for p in (results / "rewrite" / "train" / shard).glob("*.json") if p.stem.isdigit()]
    records = [(int(path.stem), read_json(path)) for path in slot_files]

    def rejections(slot: int) -> dict[tuple, list[str]]:
        if not with_filter:
            return {}
        decisions = read_json(results / "filter" / "train" / shard / f"{slot}.json").get("decisions", [])
        return {tuple(d["subset"]): d.get("reasons") or ["rejected"] for d in decisions if not d["accepted"]}

    rejected_by_slot = {slot: rejections(slot) for slot, _ in records}  # each filter record read once

    def figures(slot: int, record: dict) -> list[dict]:
        folder = results / "inpaint" / "train" / shard / str(slot)
        rejected = rejected_by_slot[slot]
        texts = {tuple(d["subset"]): d for d in record["duals"]}
        row = [{"src": png_data_uri((results / "data" / "train" / shard / f"{slot}.png").read_bytes()),
                "name": "original", "text": record["caption"], "problems": [], "rejected": []}]
        for dual in read_json(folder / "duals.json")["duals"]:
            text = texts[tuple(dual["subset"])]
            row.append({"src": png_data_uri((folder / dual["file"]).read_bytes()), "name": dual["file"].removesuffix(".png"),
                        "text": text["text"], "problems": [] if text["check_ok"] else (text.get("problems") or ["check failed"]),
                        "rejected": rejected.get(tuple(dual["subset"]), [])})
        return row

    most_duals = sorted(records, key=lambda item: (-len(item[1]["duals"]), item[0]))[:size]
    shown = [figures(slot, record) for slot, record in most_duals]
    flagged = [(slot, record) for slot, record in sorted(records, key=lambda item: item[0])
               if not all(d["check_ok"] for d in record["duals"]) or rejected_by_slot[slot]][:size]
    return shown, [figures(slot, record) for slot, record in flagged]


# the page: a Jinja2 template beside the report's rst captions (the workflow's report/ folder)
TEMPLATE = Path(__file__).resolve().parents[2] / "report" / "report.html.j2"


def render_page(template: str | Path, context: dict) -> str:
    """The report page from its template, every value autoescaped but the pandas tables."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(template).parent), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters["number"] = lambda value: "" if value is None else (
        f"{float(value):,.0f}" if float(value).is_integer() else f"{float(value):,.1f}")
    return environment.get_template(Path(template).name).render(context)


def write_report(config: dict, score_files: list[str], summary_files: list[str], log_files: list[str], outputs,
                 funnel_manifests: list[str] = (), expected_runs: list = (), template: str | Path = TEMPLATE,
                 manifold_files: list[str] = ()) -> None:
    """Every output of the report rule; ``funnel_manifests`` are the training split's shard
    manifests of the stages the data funnel reads, ``expected_runs`` the (method, n, seed)
    the workflow planned (a run without scores is listed on the first screen)."""
    from dualclip.report.overview import (
        FULL_COLOUR_POINTS,
        compact_table,
        data_funnel,
        findings,
        missing_runs,
        not_discriminative,
    )

    results = Path(config["results_dir"])
    default_n = config["dataset"]["n_train"]
    scores = load_scores(score_files, default_n)
    write_text(outputs.table, scores.to_csv(index=False))
    table = summary_table(with_literature(scores))
    write_text(outputs.summary, table.to_csv())
    comparisons = config["report"].get("comparisons", [])
    differences, missing = paired_differences(scores, comparisons)
    write_text(outputs.paired, differences.to_csv(index=False))
    equivalents = real_image_equivalents(scores, default_n)
    write_text(outputs.equivalents, equivalents.to_csv(index=False))
    summaries = [with_planned_size(read_json(path), path) for path in summary_files]
    runs = pd.DataFrame(summaries)
    runs.insert(0, "run", [run_label(m, n, default_n) for m, n in zip(runs["method"], runs["n_train"])])
    run_columns = ["run", "seed", "steps", "epochs", "images_seen", "texts_seen", "n_train", "n_samples", "subset_policy",
                   "duals_per_image", "sample_k", "n_duals_used",
                   "n_duals_rejected", "neighbour_model", "device", "code_version"]
    figure = suites_figure(scores)
    curves = curves_figure(log_files, summaries, default_n)
    outputs_dict = dict(outputs.items())
    write_bytes(outputs_dict["figure"], figure)
    write_bytes(outputs_dict["curves"], curves)
    suites_file = results / "eval" / "suites.json"
    counts = "none (no synthetic suites for this dataset)"
    if suites_file.exists():
        counts = ", ".join(f"{suite}: {count}" for suite, count in sorted(read_json(suites_file)["counts"].items()))
    train = config["train"]
    compute = (f"equal compute: every run gets {train['budget_images']:,} image forward passes "
               f"({train['budget_images'] // train['batch_images']} steps of {train['batch_images']} images)"
               if train["compute"] == "equal_compute" else f"equal epochs: {train['epochs']} passes over each method's data")
    with_filter = bool(config.get("filter", {}).get("enabled", False))
    shown, flagged = gallery(results, int(config["report"]["gallery_size"]), with_filter)
    manifold = display_table(list(manifold_files))  # do dual images lie near the data manifold?
    low, high = config["report"]["discriminative_range"]
    apart = not_discriminative(scores, (low, high))
    compact_runs, compact_rows, compact_rows_apart = compact_table(scores, expected_runs, default_n, apart)
    priced = None
    if not equivalents.empty:
        priced = equivalents.pivot_table(index=["benchmark", "suite", "metric"], columns="method", values="label",
                                         aggfunc="first", sort=False)
    # pandas escapes the cells of the tables it writes (*_table): the template marks them safe
    context = {
        "dataset": config["dataset"]["name"], "n_train": default_n, "model": config["model"]["name"],
        "pretrained": str(config["model"].get("pretrained")), "methods": train["methods"],
        "seeds": [str(seed) for seed in train["seeds"]], "compute": compute, "code_version": code_version(),
        "missing_runs": missing_runs(scores, expected_runs, default_n),
        "findings": findings(scores, comparisons, apart),
        "discriminative_range": f"{low:g}–{high:g}",
        "funnel": data_funnel(list(funnel_manifests), default_n, int(config["shard_size"]), summaries),
        "funnel_note": "No method of this study trains on duals: no dual data to count.",
        "compact_runs": compact_runs, "compact_rows": compact_rows, "compact_rows_apart": compact_rows_apart, "full_colour": f"{FULL_COLOUR_POINTS:g}",
        "length_run": LENGTH_RUN,
        "results_table": table.to_html(na_rep="", classes="results"),
        "paired_table": paired_table(differences).to_html(na_rep="") if not differences.empty else None,
        "missing_comparisons": missing,
        "equivalents_table": None if priced is None else priced.to_html(na_rep=""),
        "data_size_figure": None if priced is None else png_data_uri(data_size_figure(scores, default_n)),
        "suites_figure": png_data_uri(figure), "curves_figure": png_data_uri(curves),
        "runs_table": runs[[c for c in run_columns if c in runs]].to_html(index=False),
        "gallery": shown, "rejected_gallery": flagged, "filter_enabled": with_filter,
        "suite_counts": counts, "config_yaml": yaml.safe_dump(config, sort_keys=False),
        "manifold_table": None if manifold is None else manifold.to_html(index=False, na_rep="n/a"),
    }
    write_text(outputs.html, render_page(template, context))
    print(table.to_string())
