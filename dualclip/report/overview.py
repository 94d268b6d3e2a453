"""The report's first screen: findings from the paired differences, the data funnel, and a
compact method x suite table with the blind score beside each cell.

Pure functions on the score table, the train run summaries and the stage records; the page
itself is the Jinja2 template ``report/report.html.j2``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dualclip.io import read_json
from dualclip.report import HEADLINE_METRICS, paired_differences, run_label
from dualclip.train.methods import get_method, method_rank
from dualclip.workflow import per_image_files

# A gain counts as a possible text prior when the same comparison on the blind score (the
# texts against the mean image) gains at least this fraction of it.
TEXT_PRIOR_FRACTION = 0.5
# |difference from the baseline| in points at which a compact-table cell is fully coloured
FULL_COLOUR_POINTS = 10.0
# the only metric the discriminative range applies to: two-way and multiple-choice items, bounded by
# chance and 100; retrieval R@1 and zero-shot top-1 have no such ceiling and always rank
BOUNDED_METRIC = "accuracy"


def suite_label(benchmark: str, suite: str, metric: str) -> str:
    """'sc_add_obj', 'retrieval_t2i R@1', 'sugarcrepe/add_obj': one short name per headline row."""
    name = suite if benchmark == "synthetic" else f"{benchmark}/{suite}"
    return name if metric == "accuracy" else f"{name} {metric}"


def blind_as_headline(scores: pd.DataFrame) -> pd.DataFrame:
    """The ``blind_<metric>`` rows renamed to their headline metric, so that the paired
    differences of the blind scores line up with those of the real ones."""
    blind = scores[scores["metric"].isin([f"blind_{metric}" for metric in HEADLINE_METRICS])]
    return blind.assign(metric=blind["metric"].str.removeprefix("blind_"))


# ------------------------------------------------------------------ discriminative suites


def not_discriminative(scores: pd.DataFrame, score_range: tuple[float, float]) -> dict[tuple, float]:
    """The accuracy suites on which the baseline (the default training set, mean over seeds)
    lies outside ``report.discriminative_range``: at chance or at the ceiling for the
    baseline, a suite cannot rank methods at this budget. Kept in the report but shown
    apart. Suite key -> the baseline's mean; empty when the study has no baseline run."""
    low, high = score_range
    baseline = scores[(scores["run"] == "baseline") & (scores["metric"] == BOUNDED_METRIC)]
    means = baseline.groupby(["benchmark", "suite", "metric"], sort=False)["value"].mean()
    return {key: float(mean) for key, mean in means.items() if not low <= mean <= high}


# ------------------------------------------------------------------ findings


@dataclass
class SuiteGain:
    suite: str
    mean: float
    std: float  # nan with one seed
    seeds: int
    blind_mean: float | None = None  # the same comparison on the blind score, when the suite has one

    @property
    def text(self) -> str:
        spread = "" if self.seeds < 2 else f" ± {self.std:.1f}"
        blind = "" if self.blind_mean is None else f", blind {self.blind_mean:+.1f}"
        return f"{self.suite} {self.mean:+.1f}{spread}{blind}"


@dataclass
class Finding:
    comparison: str
    seeds: int = 0  # the most seeds a suite was paired on
    ahead: list[SuiteGain] = field(default_factory=list)  # a > b on every seed
    behind: list[SuiteGain] = field(default_factory=list)  # a < b on every seed
    mixed: int = 0  # suites with seeds both ways or ties
    text_prior: list[SuiteGain] = field(default_factory=list)  # of ahead: the blind score gains too
    missing: bool = False  # a run of the pair is not in this study
    # on the suites that are not discriminative at this budget, apart from the ranking ones
    ahead_apart: list[SuiteGain] = field(default_factory=list)
    behind_apart: list[SuiteGain] = field(default_factory=list)


def findings(scores: pd.DataFrame, comparisons: list[list[str]], apart: dict[tuple, float] | None = None) -> list[Finding]:
    """Per comparison a - b of ``report.comparisons``: the suites where a is ahead on every
    seed (mean ± sd of the per-seed differences), those where it is behind on every seed,
    how many are mixed, and which gains the blind score shares (a text prior, not the image).
    Suites in ``apart`` (not discriminative at this budget) are listed separately."""
    apart = apart or {}
    blind = blind_as_headline(scores)
    out = []
    for a, b in comparisons:
        differences, missing = paired_differences(scores, [[a, b]])
        finding = Finding(f"{a} − {b}", missing=bool(missing))
        if missing:
            out.append(finding)
            continue
        blind_differences, _ = paired_differences(blind, [[a, b]])
        blind_means = {(row.benchmark, row.suite, row.metric): row.mean_difference for row in blind_differences.itertuples()}
        # b - a counts the seeds where b is strictly ahead: a tie is neither a win nor a loss
        reverse, _ = paired_differences(scores, [[b, a]])
        b_ahead = {(row.benchmark, row.suite, row.metric): row.a_ahead for row in reverse.itertuples()}
        finding.seeds = int(differences["seeds"].max())
        for row in differences.itertuples():
            key = (row.benchmark, row.suite, row.metric)
            gain = SuiteGain(suite_label(*key), row.mean_difference, row.std, row.seeds, blind_means.get(key))
            if row.a_ahead == row.seeds:
                if key in apart:
                    finding.ahead_apart.append(gain)
                    continue
                finding.ahead.append(gain)
                if gain.blind_mean is not None and gain.blind_mean >= TEXT_PRIOR_FRACTION * gain.mean:
                    finding.text_prior.append(gain)
            elif b_ahead[key] == row.seeds:
                (finding.behind_apart if key in apart else finding.behind).append(gain)
            else:
                finding.mixed += 1
        for gains in (finding.ahead, finding.ahead_apart):
            gains.sort(key=lambda gain: -gain.mean)
        for gains in (finding.behind, finding.behind_apart):
            gains.sort(key=lambda gain: gain.mean)
        out.append(finding)
    return out


# ------------------------------------------------------------------ compact table


@dataclass
class CompactCell:
    value: float | None  # mean over seeds; None: the run has no score here
    blind: float | None = None
    difference: float | None = None  # value minus the baseline's mean on the same suite
    seeds: int = 0

    @property
    def style(self) -> str:
        """Green above the baseline, red below, stronger with the difference."""
        if self.difference is None or self.difference == 0:
            return ""
        alpha = min(abs(self.difference) / FULL_COLOUR_POINTS, 1.0) * 0.55
        colour = "40,150,60" if self.difference > 0 else "200,50,50"
        return f"background: rgba({colour},{alpha:.2f})"


def expected_labels(expected_runs, default_n: int) -> list[str]:
    return list(dict.fromkeys(run_label(method, n, default_n) for method, n, _ in expected_runs))


def missing_runs(scores: pd.DataFrame, expected_runs, default_n: int) -> list[str]:
    """The planned runs (method, n, seed) that have no score at all: listed, never dropped."""
    have = set(zip(scores["run"], scores["seed"].astype(int)))
    return [f"{run_label(method, n, default_n)} seed {seed}" for method, n, seed in expected_runs
            if (run_label(method, n, default_n), int(seed)) not in have]


def compact_table(scores: pd.DataFrame, expected_runs, default_n: int,
                  apart: dict[tuple, float] | None = None) -> tuple[list[str], list[tuple[str, list[CompactCell]]], list[tuple[str, list[CompactCell]]]]:
    """One row per headline suite, one column per run (the planned runs first, in report
    order, a run without scores kept as an empty column): the mean over seeds, the blind
    score of the same run beside it, and the difference from the baseline on the default
    training set that colours the cell. Returns the runs, the ranking rows and, apart, the
    rows of the suites in ``apart`` (not discriminative at this budget)."""
    apart = apart or {}
    headline = scores[scores["metric"].isin(HEADLINE_METRICS)]
    blind = blind_as_headline(scores)
    keys = ["benchmark", "suite", "metric"]
    runs = list(dict.fromkeys([*expected_labels(expected_runs, default_n), *headline["run"]]))
    runs.sort(key=lambda r: (method_rank(r.split(" ")[0]), r))
    means = headline.groupby([*keys, "run"], sort=False)["value"].agg(["mean", "count"])
    blind_means = blind.groupby([*keys, "run"], sort=False)["value"].mean()
    baseline = "baseline" if "baseline" in runs else None
    rows, rows_apart = [], []
    for suite in dict.fromkeys(headline[keys].itertuples(index=False, name=None)):
        base = means["mean"].get((*suite, baseline)) if baseline else None
        cells = []
        for run in runs:
            if (*suite, run) not in means.index:
                cells.append(CompactCell(None))
                continue
            value = float(means.loc[(*suite, run), "mean"])
            cells.append(CompactCell(value, blind_means.get((*suite, run)),
                                     None if base is None or run == baseline else value - float(base),
                                     int(means.loc[(*suite, run), "count"])))
        (rows_apart if suite in apart else rows).append((suite_label(*suite), cells))
    return runs, rows, rows_apart


# ------------------------------------------------------------------ data funnel

# the per-image record each stage writes beside its manifest
RECORD_PATTERNS = {"data": "{slot}.json", "parse": "{slot}.json", "detect": "{slot}.json",
                   "inpaint": "{slot}/duals.json", "rewrite": "{slot}.json", "filter": "{slot}.json"}


@dataclass
class FunnelStep:
    step: str
    count: int | float
    unit: str
    images: int | None = None  # images that still have at least one
    lost: int | float | None = None  # lost at this step, in the step's unit
    reasons: list[tuple[str, int]] = field(default_factory=list)  # the top reasons with their counts
    note: str = ""


def reason_kind(text: str) -> str:
    """A reason without its quoted particulars, so that reasons of one kind count together:
    "removed component noun 'cube' still present" -> "removed component noun … still present"."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "…", str(text))
    # component indices, detector scores and CLIP margins differ from dual to dual too
    return re.sub(r"[-+]?\d+(?:\.\d+)?", "#", text).strip()


def top(counter: Counter, k: int = 3) -> list[tuple[str, int]]:
    return counter.most_common(k)


def manifests_by_stage(manifests: list[str]) -> dict[str, list[str]]:
    """results/{stage}/{split}/{shard}/manifest.json paths grouped by stage, in shard order."""
    by_stage: dict[str, list[str]] = {}
    for path in manifests:
        by_stage.setdefault(Path(path).parts[-4], []).append(str(path))
    return {stage: sorted(paths, key=lambda p: int(Path(p).parts[-2])) for stage, paths in by_stage.items()}


def data_funnel(manifests: list[str], n_images: int, shard_size: int, summaries: list[dict]) -> list[FunnelStep]:
    """Captions -> components parsed -> found in the image -> dual images -> dual texts that
    pass the check -> accepted by the filter -> used in training, on the first ``n_images``
    training images, read from the stage records beside the given shard manifests (one
    JSON per image and stage: it reads every record once) and from the run summaries.

    Each step counts what survived every earlier step (a dual counts as accepted by the
    filter only when its text passed the check too); "lost" is what this step removed, with
    its most frequent reasons."""
    by_stage = manifests_by_stage(manifests)
    if "data" not in by_stage:
        return []
    missing = [stage for stage in ("parse", "detect", "inpaint", "rewrite") if stage not in by_stage]
    if missing:
        raise ValueError(f"data funnel: no {', '.join(missing)} manifests among the report's inputs; "
                         "dualclip.plan.funnel_inputs() gives them when a method trains on duals")

    def records(stage: str):
        return (read_json(path) for path in per_image_files(by_stage[stage], n_images, shard_size, RECORD_PATTERNS[stage]))

    steps = []
    data = list(records("data"))
    captioned = [record.get("status") != "skipped" for record in data]
    steps.append(FunnelStep("captions", sum(captioned), "images", sum(captioned), len(data) - sum(captioned),
                            top(Counter(reason_kind(r.get("reason")) for r, ok in zip(data, captioned) if not ok))))
    parsed = list(records("parse"))
    n_components = [len(record.get("components", [])) if ok else 0 for record, ok in zip(parsed, captioned)]
    with_components = sum(n > 0 for n in n_components)
    steps.append(FunnelStep("components parsed", sum(n_components), "components", with_components,
                            None, top(Counter(reason_kind(record.get("reason") or "no component parsed")
                                              for record, ok, n in zip(parsed, captioned, n_components) if ok and not n)),
                            note=f"captions without a component: {sum(captioned) - with_components:,}"))
    found_labels, not_found = [], Counter()
    for record in records("detect"):
        found = [c for c in record.get("components", []) if c["found"]]
        found_labels.append(len(found))
        not_found.update(f"not found: {c['label']}" for c in record.get("components", []) if not c["found"])
    steps.append(FunnelStep("found in the image", sum(found_labels), "components", sum(n > 0 for n in found_labels),
                            sum(n_components) - sum(found_labels), top(not_found)))
    duals = [{tuple(d["subset"]): d["file"] for d in record.get("duals", [])} for record in records("inpaint")]
    steps.append(FunnelStep("dual images", sum(map(len, duals)), "dual images", sum(bool(d) for d in duals),
                            note="every non-empty subset of the found components"))
    texts_ok, problems = [], Counter()
    for record, images in zip(records("rewrite"), duals):
        ok = set()
        for dual in record.get("duals", []):
            if tuple(dual["subset"]) not in images:
                continue
            if dual["check_ok"]:
                ok.add(tuple(dual["subset"]))
            else:
                problems.update({reason_kind(problem) for problem in dual.get("problems") or ["check failed"]})
        texts_ok.append(ok)
    n_texts_ok = sum(map(len, texts_ok))
    steps.append(FunnelStep("dual texts passing the check", n_texts_ok, "duals", sum(bool(ok) for ok in texts_ok),
                            sum(map(len, duals)) - n_texts_ok, top(problems)))
    if "filter" in by_stage:
        accepted, rejections, accepted_any = [], Counter(), 0
        for record, ok in zip(records("filter"), texts_ok):
            kept = set()
            for decision in record.get("decisions", []):
                accepted_any += bool(decision["accepted"])
                if tuple(decision["subset"]) not in ok:
                    continue
                if decision["accepted"]:
                    kept.add(tuple(decision["subset"]))
                else:
                    # per filter check (re-detection, CLIP) when the record names them
                    by = decision.get("rejected_by")
                    rejections.update({f"rejected by {check}" for check in by} if by else
                                      {reason_kind(reason) for reason in decision.get("reasons") or ["rejected"]})
            accepted.append(kept)
        n_accepted = sum(map(len, accepted))
        steps.append(FunnelStep("accepted by the filter", n_accepted, "duals", sum(bool(kept) for kept in accepted),
                                n_texts_ok - n_accepted, top(rejections),
                                note=f"the filter accepts {accepted_any:,} of all {sum(map(len, duals)):,} dual images"))
    else:
        steps.append(FunnelStep("accepted by the filter", n_texts_ok, "duals", note="filter off (filter.enabled: false)"))
    available = steps[-1].count
    for run, group in training_summaries(summaries).items():
        used = sum(summary.get("n_duals_used", 0) for summary in group) / len(group)
        reasons = Counter()
        for summary in group:
            for reason, count in (summary.get("duals_rejected_by_reason") or {}).items():
                reasons[reason] += count / len(group)
            if summary.get("n_duals_left_out_by_policy"):
                reasons[f"left out by the subset policy {summary.get('subset_policy')}"] += summary["n_duals_left_out_by_policy"] / len(group)
        seeds = ", ".join(str(summary["seed"]) for summary in group)
        steps.append(FunnelStep(f"used in training: {run}", round(used, 1), "duals", None, None,
                                [(reason, round(count, 1)) for reason, count in reasons.most_common(3) if count],
                                note=f"seeds {seeds}" + (f"; {available:,} available" if used != available else "")))
    return steps


def training_summaries(summaries: list[dict]) -> dict[str, list[dict]]:
    """The run summaries of the methods that train on duals (on the default training set
    only: the extra data sizes are the baseline's), by method, in report order."""
    runs: dict[str, list[dict]] = {}
    for summary in summaries:
        if get_method(summary["method"]).uses_duals:
            runs.setdefault(summary["method"], []).append(summary)
    return dict(sorted(runs.items(), key=lambda item: method_rank(item[0])))
