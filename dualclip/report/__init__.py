"""report: one self-contained HTML ablation report, written by the last rule of the DAG.

Results table (mean ± std over seeds), paired per-seed differences between chosen
runs (e.g. ours − ours_shuf), a seaborn bar chart per suite with the methods
side by side (blind scores beside the real ones), training curves, the run table
(epochs, steps, images seen: the matched compute made visible), and a gallery of
training images with all their dual images and dual texts.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import yaml  # noqa: E402

from dualclip.io import code_version, read_json, write_text  # noqa: E402

METHOD_ORDER = ["zeroshot", "baseline", "negclip", "ours", "ours_neg", "ours_pos", "ours_shuf", "ours+negclip"]


def run_label(method: str, n_train: int, default_n: int) -> str:
    return method if int(n_train) == int(default_n) else f"{method} (n={n_train})"


def load_scores(score_files: list[str], default_n: int) -> pd.DataFrame:
    if not score_files:
        raise ValueError("nothing to report: no synthetic suites for this dataset and no `benchmarks:` section; "
                         "add benchmarks (see config/benchmarks_example.yaml)")
    scores = pd.concat([pd.read_csv(path) for path in score_files], ignore_index=True)
    scores["run"] = [run_label(m, n, default_n) for m, n in zip(scores["method"], scores["n_train"])]
    return scores


def with_literature(scores: pd.DataFrame) -> pd.DataFrame:
    """Published numbers for the real benchmarks we scored, as extra columns marked
    'literature: <model>' (never mixed into our runs' means)."""
    from dualclip.benchmarks.literature import literature_results

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
    table = stats.pivot_table(index=["benchmark", "suite", "metric"], columns="run", values="cell", aggfunc="first", sort=False)
    runs = sorted(table.columns, key=lambda r: (METHOD_ORDER.index(r.split(" ")[0]) if r.split(" ")[0] in METHOD_ORDER else 99, r))
    return table[runs]


HEADLINE_METRICS = ("accuracy", "R@1")


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
    palette = dict(zip(METHOD_ORDER, sns.color_palette("tab10", len(METHOD_ORDER))))
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
    data = scores[scores["metric"].isin(["accuracy", "blind_accuracy", "R@1"])].copy()
    data["score"] = data["metric"].map({"accuracy": "image+text", "R@1": "image+text", "blind_accuracy": "blind (mean image)"})
    runs = sorted(data["run"].unique(), key=lambda r: (METHOD_ORDER.index(r.split(" ")[0]) if r.split(" ")[0] in METHOD_ORDER else 99, r))
    grid = sns.catplot(data=data, kind="bar", x="run", y="value", hue="score", col="suite", col_wrap=4, order=runs,
                       errorbar="sd", height=2.6, aspect=1.25, sharey=False, palette=["#4477aa", "#cccccc"])
    grid.set_axis_labels("", "% correct")
    grid.set_titles("{col_name}")
    for axis in grid.axes.flat:
        axis.tick_params(axis="x", rotation=40)
        if not axis.get_title().startswith("retrieval"):
            axis.axhline(50, color="#aa3333", lw=0.8, ls="--")  # chance for the two-way suites
    return figure_png(grid.figure)


def curves_figure(log_files: list[str], summaries: list[dict], default_n: int) -> bytes:
    frames = []
    for path, summary in zip(log_files, summaries):
        log = pd.read_csv(path)
        log["run"] = run_label(summary["method"], summary["n_samples"], default_n)
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


def png_tag(data: bytes, width: int | None = None, title: str = "") -> str:
    style = f' width="{width}"' if width else ""
    return f'<img src="data:image/png;base64,{base64.b64encode(data).decode()}"{style} title="{html.escape(title)}">'


def gallery(results: Path, size: int) -> str:
    """Training images with the most duals: the original and every dual with its text."""
    candidates = []
    slot_files = [p for p in (results / "rewrite" / "train" / "0").glob("*.json") if p.stem.isdigit()]
    for rewrite_file in sorted(slot_files, key=lambda p: int(p.stem)):
        record = read_json(rewrite_file)
        candidates.append((len(record["duals"]), int(rewrite_file.stem), record))
    candidates.sort(key=lambda c: (-c[0], c[1]))
    blocks = []
    for _, slot, record in candidates[:size]:
        original = (results / "data" / "train" / "0" / f"{slot}.png").read_bytes()
        duals = read_json(results / "inpaint" / "train" / "0" / str(slot) / "duals.json")["duals"]
        texts = {tuple(d["subset"]): d for d in record["duals"]}
        cells = [f'<figure>{png_tag(original, 128)}<figcaption><b>original</b><br>{html.escape(record["caption"])}</figcaption></figure>']
        for dual in duals:
            text = texts[tuple(dual["subset"])]
            flag = "" if text["check_ok"] else ' <span class="bad">(check failed)</span>'
            image = (results / "inpaint" / "train" / "0" / str(slot) / dual["file"]).read_bytes()
            cells.append(f'<figure>{png_tag(image, 128)}<figcaption><b>{dual["file"][:-4]}</b><br>{html.escape(text["text"])}{flag}</figcaption></figure>')
        blocks.append(f'<div class="row">{"".join(cells)}</div>')
    return "\n".join(blocks)


CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f3f3f3}.row{display:flex;flex-wrap:wrap;gap:8px;margin-bottom:14px}
figure{margin:0;width:140px;font-size:11px}img{image-rendering:pixelated}.bad{color:#b00}
.note{background:#f7f7e8;padding:8px;border-left:3px solid #cc9}
"""


def write_report(config: dict, score_files: list[str], summary_files: list[str], log_files: list[str], outputs) -> None:
    results = Path(config["results_dir"])
    default_n = config["dataset"]["n_train"]
    scores = load_scores(score_files, default_n)
    write_text(outputs.table, scores.to_csv(index=False))
    table = summary_table(with_literature(scores))
    write_text(outputs.summary, table.to_csv())
    comparisons = config["report"].get("comparisons", [])
    differences, missing = paired_differences(scores, comparisons)
    write_text(outputs.paired, differences.to_csv(index=False))
    paired_html = paired_table(differences).to_html(na_rep="") if not differences.empty else "<p>No comparison could be made.</p>"
    if missing:
        paired_html += f"<p>Not in this study (no runs): {html.escape(', '.join(missing))}.</p>"
    equivalents = real_image_equivalents(scores, default_n)
    write_text(outputs.equivalents, equivalents.to_csv(index=False))
    data_size_html = "<p>Only one training-set size: add <code>train.data_sizes</code> for this section.</p>"
    if not equivalents.empty:
        priced = equivalents.pivot_table(index=["benchmark", "suite", "metric"], columns="method", values="label",
                                         aggfunc="first", sort=False)
        data_size_html = (f"<p>How many real images the baseline needs to match each method trained on "
                          f"{default_n:,} images (log-linear between the measured sizes; seed means).</p>"
                          f"{priced.to_html(na_rep='')}{png_tag(data_size_figure(scores, default_n))}")
    summaries = [read_json(path) for path in summary_files]
    runs = pd.DataFrame(summaries)
    runs.insert(0, "run", [run_label(m, n, default_n) for m, n in zip(runs["method"], runs["n_samples"])])
    run_columns = ["run", "seed", "steps", "epochs", "images_seen", "texts_seen", "n_samples", "n_duals_used",
                   "n_duals_rejected", "neighbour_model", "device", "code_version"]
    figure = suites_figure(scores)
    curves = curves_figure(log_files, summaries, default_n)
    outputs_dict = dict(outputs.items())
    Path(outputs_dict["figure"]).write_bytes(figure)
    Path(outputs_dict["curves"]).write_bytes(curves)
    suites_file = results / "eval" / "suites.json"
    counts = "none (no synthetic suites for this dataset)"
    if suites_file.exists():
        counts = ", ".join(f"{suite}: {count}" for suite, count in sorted(read_json(suites_file)["counts"].items()))
    train = config["train"]
    compute = (f"equal compute: every run gets {train['budget_images']:,} image forward passes "
               f"({train['budget_images'] // train['batch_images']} steps of {train['batch_images']} images)"
               if train["compute"] == "equal_compute" else f"equal epochs: {train['epochs']} passes over each method's data")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>dualclip ablation report</title>
<style>{CSS}</style></head><body>
<h1>dualclip ablation report</h1>
<p>Dataset <b>{html.escape(config['dataset']['name'])}</b> with {default_n:,} training images; model
<b>{html.escape(config['model']['name'])}</b> (pretrained: {html.escape(str(config['model'].get('pretrained')))});
methods {', '.join(train['methods'])}; seeds {train['seeds']}; {compute}. Code version {code_version()}.</p>
<p class="note">Accuracy in % (chance 50 for every two-way suite; R@1 for retrieval). An item is correct only when
the positive scores strictly higher than every negative (ties are wrong). <b>blind_accuracy</b> scores the same texts
against the mean test-image embedding: a high blind score means the suite can be solved from the text alone
(e.g. "the longer caption wins"), so read add-obj/add-att and omission together.
<b>accuracy_novel_pairs</b>: items whose scene contains a colour-shape pair never seen in training.
<b>image_side_sham</b> is a control: ~50 means the image-side gain is not the inpainting artefact.
Cells are mean ± std over seeds.</p>
<h2>Results</h2>{table.to_html(na_rep="", classes="results")}
<h2>Paired differences over seeds</h2>
<p>Run a minus run b on the same seed (same data order and initialisation), mean ± std of the per-seed
differences in points, and on how many seeds a scored strictly higher. The pairs are <code>report.comparisons</code>.</p>
{paired_html}
<h2>Duals priced in real images (baseline data-size curve)</h2>
{data_size_html}
<h2>Each suite, methods side by side</h2>{png_tag(figure)}
<h2>Runs (matched compute)</h2>{runs[[c for c in run_columns if c in runs]].to_html(index=False)}
<h2>Training</h2>{png_tag(curves)}
<h2>Dual images and dual texts (training set)</h2>
<p>Each row: an original training image and every non-empty subset of its components removed
(file name = removed component indices), with its dual text.</p>
{gallery(results, int(config['report']['gallery_size']))}
<h2>Test suites</h2><p>Items per suite: {counts}.</p>
<h2>Configuration</h2><pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre>
</body></html>"""
    write_text(outputs.html, page)
    print(table.to_string())
