"""What the workflow plans from a config: runs, shards, stage inputs and rule parameters.

Pure functions of the (validated) config, without Snakemake: ``rules/common.smk`` and the
rules call them while the DAG is built, and the tests call them directly. Paths are
relative to ``config["results_dir"]``; shard k of a split always holds images
``k*S .. k*S+S-1`` with ``S = config["shard_size"]``. The method registry
(:mod:`dualclip.train.methods`) says which stages a method reads; this module turns that
into shard manifests, training runs and the report's inputs.
"""

from __future__ import annotations

import math

from dualclip.eval.benchmarks import stage as benchmark_stage
from dualclip.eval.manifold import DEFAULT_IMAGES as DEFAULT_MANIFOLD_IMAGES
from dualclip.filter import FilterSettings
from dualclip.train.methods import get_method, split_policy

# --------------------------------------------------------------------------- shards


def n_shards(config: dict, n_images) -> int:
    return math.ceil(int(n_images) / config["shard_size"])


def split_size(config: dict, split: str) -> int:
    """Images of a split that some job needs: the train split covers every data size."""
    dataset = config["dataset"]
    if split == "train":
        return max([dataset["n_train"], *config["train"]["data_sizes"]])
    return dataset[f"n_{split}"]


def shard_image_count(config: dict, split: str, shard) -> int:
    """Images in one shard: raising n_* reruns only the partial last shard and the new ones."""
    shard_size = config["shard_size"]
    first = int(shard) * shard_size
    return max(0, min(shard_size, split_size(config, split) - first))


def without_sizes(section: dict) -> dict:
    """A config section minus the image counts: raising n_* must not rerun finished shards."""
    return {key: value for key, value in section.items() if not key.startswith("n_")}


def manifest_path(config: dict, stage: str, split: str, shard) -> str:
    """Where a stage writes one shard's manifest: the one place this layout is spelled."""
    return f"{config['results_dir']}/{stage}/{split}/{shard}/manifest.json"


def shard_manifest(config: dict, stage: str) -> str:
    """The same shard's manifest of an upstream stage (a pattern with {split} and {shard}):
    a shard job depends on it, not on its per-image files. The manifest lists every file of
    the shard with its size, checked against the disk before every run."""
    return manifest_path(config, stage, "{split}", "{shard}")


def manifests(config: dict, stage: str, split: str, n_images) -> list[str]:
    """The shard manifests covering the first n_images of a split."""
    return [manifest_path(config, stage, split, shard) for shard in range(n_shards(config, n_images))]


def data_prerequisites(config: dict) -> list[str]:
    """What every data shard waits for: COCO's prepared annotations."""
    if config["dataset"]["name"] == "coco":
        return [f"{config['results_dir']}/data/coco_prepared.json"]
    return []


# --------------------------------------------------------------------------- stages


def uses_duals(method: str) -> bool:
    return get_method(method).uses_duals


def uses_parse(method: str) -> bool:
    # NegCLIP's swap negatives live in the parse records
    return get_method(method).uses_negatives


def trains_on_duals(config: dict) -> bool:
    """Whether some method of train.methods trains on duals (the dual stages run)."""
    return any(uses_duals(method) for method in config["train"]["methods"])


def synthetic_suites(config: dict) -> bool:
    """The synthetic benchmark suites need the synthetic world's ground truth."""
    return config["dataset"]["name"] == "shapes"


def dual_stages(config: dict) -> list[str]:
    """The stages that make and judge the duals (the filter when it is on)."""
    return ["rewrite", "inpaint"] + (["filter"] if config["filter"]["enabled"] else [])


def clip_filter_enabled(config: dict) -> bool:
    """The dual filter's CLIP check reads the dual texts (rewrite) and a CLIP model."""
    return FilterSettings.from_config(config["filter"], "filter").clip_check.enabled


def filter_settings(config: dict) -> dict:
    """config["filter"]; the CLIP check without a model of its own gets the run's starting model."""
    settings = dict(config["filter"])
    if clip_filter_enabled(config) and not settings["clip"].get("model"):
        settings["clip"] = {
            **settings["clip"],
            "model": {"name": config["model"]["name"], "pretrained": config["model"].get("pretrained")},
        }
    return settings


def upstream_stages(config: dict) -> dict[str, list[str]]:
    """The stages whose manifests a shard job of each stage reads (rules/<stage>.smk inputs)."""
    return {
        "data": [],
        "parse": ["data"],
        "detect": ["data", "parse"],
        "inpaint": ["data", "detect"],
        "rewrite": ["parse", "detect"],
        "filter": ["data", "parse", "detect", "inpaint"] + (["rewrite"] if clip_filter_enabled(config) else []),
    }


# --------------------------------------------------------------------------- training runs


def training_runs(config: dict) -> list[tuple[str, int, int]]:
    """(method, n images, seed) of every run: the methods at n_train, plus the baseline
    on the extra data sizes that price a dual in real-image equivalents."""
    train = config["train"]
    n_train = config["dataset"]["n_train"]
    runs = [(method, n_train, seed) for method in train["methods"] for seed in train["seeds"]]
    if train.get("zeroshot", False):
        runs.append(("zeroshot", n_train, train["seeds"][0]))  # the untrained starting model
    runs += [("baseline", size, seed) for size in train["data_sizes"] for seed in train["seeds"] if size != n_train]
    return runs


def run_dir(config: dict, stage: str, method: str, n, seed) -> str:
    return f"{config['results_dir']}/{stage}/{method}/n{n}/seed{seed}"


def train_inputs(config: dict, method: str, n) -> dict[str, list[str]]:
    """Shard manifests (not per-image files) of every stage a run of the method reads."""
    n = int(n)
    duals = uses_duals(method)
    return {
        "data": manifests(config, "data", "train", n),
        "val": manifests(config, "data", "val", config["dataset"]["n_val"]),
        "parse": manifests(config, "parse", "train", n) if uses_parse(method) else [],
        "rewrite": manifests(config, "rewrite", "train", n) if duals else [],
        "inpaint": manifests(config, "inpaint", "train", n) if duals else [],
        "filter": manifests(config, "filter", "train", n) if duals and config["filter"]["enabled"] else [],
    }


# keys of config["train"] that no run's result depends on: the run list, the
# checkpoint cadence and the loader processes (the batches are the same)
NOT_TRAIN_PARAMS = ("methods", "seeds", "data_sizes", "zeroshot", "checkpoint_every", "loader_workers")


def train_params(config: dict, method: str) -> dict:
    """The train settings a method's result depends on: changing another method's
    settings (negclip.k, use_failed_rewrites), the epochs of the unused compute mode,
    or how often to checkpoint must not rerun it. A subset policy only filters the duals
    at train time, so it is a train parameter, never an inpaint or rewrite one."""
    registered = get_method(method)
    settings = {key: value for key, value in config["train"].items() if key not in NOT_TRAIN_PARAMS}
    if not registered.uses_neighbours:
        settings.pop("negclip", None)
    if not registered.graded_targets:
        settings.pop("ours_soft", None)
    if not registered.uses_duals or split_policy(method)[1] is not None:
        settings.pop("subsets", None)  # no duals, or the policy is in the name
    if not registered.uses_duals:
        settings.pop("use_failed_rewrites", None)
    settings.pop("epochs" if settings["compute"] == "equal_compute" else "budget_images", None)
    return settings


# --------------------------------------------------------------------------- evaluation and report


def manifold_images(config: dict) -> int:
    """Training originals (with all their duals) that the manifold check embeds."""
    return min(config["eval"].get("manifold_images", DEFAULT_MANIFOLD_IMAGES), config["dataset"]["n_train"])


def manifold_model(config: dict) -> str:
    """The model that embeds for the manifold check: the baseline of the first seed (it never saw a dual)."""
    return f"{run_dir(config, 'train', 'baseline', config['dataset']['n_train'], config['train']['seeds'][0])}/model.pt"


def manifold_outputs(config: dict) -> list[str]:
    """The manifold table (rule eval_manifold), when the study trains the baseline that
    measures and a method on duals; eval.manifold_images: 0 leaves it out."""
    if manifold_images(config) == 0 or "baseline" not in config["train"]["methods"]:
        return []
    if not trains_on_duals(config):
        return []
    return [f"{config['results_dir']}/eval/manifold.csv"]


def eval_outputs(config: dict) -> list[str]:
    """Synthetic suite scores of every run (shapes only)."""
    if not synthetic_suites(config):
        return []
    return [f"{run_dir(config, 'eval', m, n, s)}/synthetic.csv" for m, n, s in training_runs(config)]


def benchmark_eval_outputs(config: dict) -> list[str]:
    """Score CSVs of every training run on every configured benchmark and, with a
    `zeroshot_classification:` section, on zero-shot classification (rules/eval.smk)."""
    names = list(benchmark_stage.configured(config))
    if config.get("zeroshot_classification"):
        names.append("classification")
    return [f"{run_dir(config, 'eval', m, n, s)}/{b}.csv" for m, n, s in training_runs(config) for b in names]


def benchmark_image_archives(config: dict, benchmark: str) -> list[str]:
    """Marker files of the image archives that `download_images: true` asks for (image
    sources without a configured folder that have a public archive). Shared archives
    download once."""
    archives = benchmark_stage.archives_needed(benchmark, benchmark_stage.section(config, benchmark))
    return [f"{config['results_dir']}/benchmark_data/images/{archive}/archive.json" for archive in archives]


def train_summaries(config: dict) -> list[str]:
    return [f"{run_dir(config, 'train', m, n, s)}/summary.json" for m, n, s in training_runs(config)]


def train_logs(config: dict) -> list[str]:
    return [f"{run_dir(config, 'train', m, n, s)}/train_log.csv" for m, n, s in training_runs(config)]


def gallery_inputs(config: dict) -> list[str]:
    """Shard 0 of the dual stages, shown in the report when a method trains on duals
    (with the filter's decisions: the gallery shows rejected duals)."""
    if not trains_on_duals(config):
        return []
    return [manifest_path(config, stage, "train", 0) for stage in ["data", *dual_stages(config)]]


def funnel_inputs(config: dict) -> list[str]:
    """The report's data funnel: every stage's shard manifests of the first n_train
    training images (it reads the records beside them), when a method trains on duals."""
    if not trains_on_duals(config):
        return []
    n_train = config["dataset"]["n_train"]
    return [
        manifest
        for stage in ["data", "parse", "detect", *dual_stages(config)]
        for manifest in manifests(config, stage, "train", n_train)
    ]


def needed_manifests(config: dict) -> list[str]:
    """Every shard manifest the final report depends on, directly or through another shard."""
    results = config["results_dir"]
    needed = set(gallery_inputs(config)) | set(funnel_inputs(config))
    for method, n, _ in training_runs(config):
        for files in train_inputs(config, method, n).values():
            needed.update(files)
    if synthetic_suites(config):
        needed.update(manifests(config, "data", "test", config["dataset"]["n_test"]))
    upstream = upstream_stages(config)
    pending = list(needed)
    while pending:
        stage, rest = pending.pop()[len(results) + 1 :].split("/", 1)
        for upstream_stage in upstream[stage]:
            manifest = f"{results}/{upstream_stage}/{rest}"
            if manifest not in needed:
                needed.add(manifest)
                pending.append(manifest)
    return sorted(needed)
