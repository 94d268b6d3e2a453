import sys
import math
from pathlib import Path

from types import SimpleNamespace

from snakemake.logging import logger

sys.path.insert(0, workflow.basedir)  # the dualclip package beside the workflow
from dualclip.workflow import withdraw_stale_manifests
from dualclip.preflight import check_config, hold_results_lock
from dualclip.filter import FilterSettings
from dualclip.registry import get_backend
from dualclip.train.methods import get_method, method_wildcard, split_policy
from dualclip.eval.manifold import DEFAULT_IMAGES as DEFAULT_MANIFOLD_IMAGES
from dualclip.eval.benchmarks import stage as benchmark_stage
from dualclip.eval.benchmarks.registry import REGISTRY as BENCHMARK_REGISTRY

RESULTS = config["results_dir"]
SHARD_SIZE = config["shard_size"]
ENV = "../envs/dualclip.yaml"
PY = "python"

if workflow.is_main_process:
    # Before any job, dry runs included: a missing model, spaCy pipeline, vocabulary, open_clip
    # name or benchmark copy stops here, not in the first job of its stage. Cluster jobs
    # re-parse this file and skip it: the main process has checked.
    for _warning in check_config(config):
        logger.warning(_warning)

# the open lock file: the lock on results_dir holds while it stays open
RESULTS_LOCK = []


onstart:
    # Snakemake calls onstart for real runs only, after building the DAG and before the first
    # job: not for dry runs (-n may plan beside a running workflow: it writes nothing) nor in
    # cluster jobs (--no-hooks). workflow.dryrun is unknown while this file is parsed.
    if workflow.is_main_process:
        _lock = hold_results_lock(RESULTS)
        if _lock is None:
            logger.warning(
                f"{RESULTS}: the file system offers no file locks; nothing stops a second "
                "workflow from writing to the same results_dir"
            )
        RESULTS_LOCK.append(_lock)


wildcard_constraints:
    split="train|val|test",
    shard=r"\d+",
    method=method_wildcard(),
    n=r"\d+",
    seed=r"\d+",


def n_shards(n_images):
    return math.ceil(int(n_images) / SHARD_SIZE)


def split_size(split):
    """Images of a split that some job needs: the train split covers every data size."""
    dataset = config["dataset"]
    if split == "train":
        return max([dataset["n_train"], *config["train"]["data_sizes"]])
    return dataset[f"n_{split}"]


def shard_image_count(wildcards):
    """Images in one shard: shard k always holds images k*S .. k*S+S-1, so raising n_*
    reruns only the partial last shard and the new ones."""
    first = int(wildcards.shard) * SHARD_SIZE
    return max(0, min(SHARD_SIZE, split_size(wildcards.split) - first))


def without_sizes(section):
    """A config section minus the image counts: raising n_* must not rerun finished shards."""
    return {key: value for key, value in section.items() if not key.startswith("n_")}


def shard_manifest(stage):
    """The same shard's manifest of an upstream stage: a shard job depends on it, not on
    its per-image files. The manifest lists every file of the shard with its size, and
    withdraw_stale_shards() checks them against the disk before every run."""
    return f"{RESULTS}/{stage}/{{split}}/{{shard}}/manifest.json"


def data_prerequisites(wildcards):
    if config["dataset"]["name"] == "coco":
        return [f"{RESULTS}/data/coco_prepared.json"]
    return []


def synthetic_suites():
    """The synthetic benchmark suites need the synthetic world's ground truth."""
    return config["dataset"]["name"] == "shapes"


def dual_stages():
    """The stages that make and judge the duals (the filter when it is on)."""
    return ["rewrite", "inpaint"] + (["filter"] if config["filter"]["enabled"] else [])


def gallery_inputs():
    """Shard 0 of the dual stages, shown in the report when a method trains on duals
    (with the filter's decisions: the gallery shows rejected duals)."""
    if not any(uses_duals(method) for method in config["train"]["methods"]):
        return []
    return [
        f"{RESULTS}/{stage}/train/0/manifest.json" for stage in ["data", *dual_stages()]
    ]


def funnel_inputs():
    """The report's data funnel: every stage's shard manifests of the first n_train
    training images (it reads the records beside them), when a method trains on duals.
    """
    if not any(uses_duals(method) for method in config["train"]["methods"]):
        return []
    n_train = config["dataset"]["n_train"]
    return [
        manifest
        for stage in ["data", "parse", "detect", *dual_stages()]
        for manifest in manifests(stage, "train", n_train)
    ]


def report_template():
    """The report page's Jinja2 template: editing it rewrites the report."""
    return str(Path(workflow.basedir) / "report" / "report.html.j2")


def uses_duals(method):
    return get_method(method).uses_duals


def uses_parse(method):
    # NegCLIP's swap negatives live in the parse records
    return get_method(method).uses_negatives


def manifests(stage, split, n_images):
    """The shard manifests covering the first n_images of a split."""
    return [
        f"{RESULTS}/{stage}/{split}/{shard}/manifest.json"
        for shard in range(n_shards(n_images))
    ]


def train_inputs(wildcards):
    """Shard manifests (not per-image files) of every stage the method reads."""
    n, method = int(wildcards.n), wildcards.method
    files = {
        "data": manifests("data", "train", n),
        "val": manifests("data", "val", config["dataset"]["n_val"]),
    }
    files["parse"] = manifests("parse", "train", n) if uses_parse(method) else []
    files["rewrite"] = manifests("rewrite", "train", n) if uses_duals(method) else []
    files["inpaint"] = manifests("inpaint", "train", n) if uses_duals(method) else []
    files["filter"] = (
        manifests("filter", "train", n)
        if uses_duals(method) and config["filter"]["enabled"]
        else []
    )
    return files


def clip_filter_enabled():
    """The dual filter's CLIP check reads the dual texts (rewrite) and a CLIP model."""
    return FilterSettings.from_config(config["filter"], "filter").clip_check.enabled


def filter_settings():
    """config["filter"]; the CLIP check without a model of its own gets the run's starting model."""
    settings = dict(config["filter"])
    if clip_filter_enabled() and not settings["clip"].get("model"):
        settings["clip"] = {
            **settings["clip"],
            "model": {
                "name": config["model"]["name"],
                "pretrained": config["model"].get("pretrained"),
            },
        }
    return settings


def train_params(method):
    """The train settings a method's result depends on: changing another method's
    settings (negclip.k, use_failed_rewrites), the epochs of the unused compute mode,
    or how often to checkpoint must not rerun it. A subset policy only filters the duals
    at train time, so it is a train parameter, never an inpaint or rewrite one."""
    settings = dict(config["train"])
    for key in (
        "methods",
        "seeds",
        "data_sizes",
        "zeroshot",
        "checkpoint_every",
        "loader_workers",
    ):
        settings.pop(key, None)
    if not get_method(method).uses_neighbours:
        settings.pop("negclip", None)
    if not get_method(method).graded_targets:
        settings.pop("ours_soft", None)
    if not uses_duals(method) or split_policy(method)[1] is not None:
        settings.pop("subsets", None)  # no duals, or the policy is in the name
    if not uses_duals(method):
        settings.pop("use_failed_rewrites", None)
    settings.pop(
        "epochs" if settings["compute"] == "equal_compute" else "budget_images", None
    )
    return settings


def model_config_file():
    """The architecture JSON when the model is one of dualclip's (editing it reruns training)."""
    path = (
        Path(workflow.basedir)
        / "dualclip"
        / "model_configs"
        / f"{config['model']['name']}.json"
    )
    return [str(path)] if path.exists() else []


def prompt_files(stage):
    """An LLM backend's prompt file (its default when not set) is an input: editing the
    prompt reruns the stage."""
    section = config[stage]
    settings = get_backend(stage, section["backend"]).settings_class()
    prompt = getattr(settings.from_config(section, stage), "prompt", None)
    if not prompt:
        return []
    path = Path(prompt)
    if not path.is_absolute() and not path.exists():
        # the workflow's own config/prompts/, run from elsewhere
        path = Path(workflow.basedir) / path
    return [str(path)]


# the stages whose manifests a shard job of each stage reads (rules/<stage>.smk inputs)
UPSTREAM_STAGES = {
    "data": [],
    "parse": ["data"],
    "detect": ["data", "parse"],
    "inpaint": ["data", "detect"],
    "rewrite": ["parse", "detect"],
    "filter": ["data", "parse", "detect", "inpaint"]
    + (["rewrite"] if clip_filter_enabled() else []),
}


def needed_manifests():
    """Every shard manifest the final report depends on, directly or through another shard."""
    needed = set(gallery_inputs()) | set(funnel_inputs())
    for method, n, seed in training_runs():
        wildcards = SimpleNamespace(method=method, n=str(n), seed=str(seed))
        for files in train_inputs(wildcards).values():
            needed.update(files)
    if synthetic_suites():
        needed.update(manifests("data", "test", config["dataset"]["n_test"]))
    pending = list(needed)
    while pending:
        stage, rest = pending.pop()[len(RESULTS) + 1 :].split("/", 1)
        for upstream in UPSTREAM_STAGES[stage]:
            manifest = f"{RESULTS}/{upstream}/{rest}"
            if manifest not in needed:
                needed.add(manifest)
                pending.append(manifest)
    return sorted(needed)


def withdraw_stale_shards():
    """Per-image caching without per-image targets (which made the DAG build take minutes
    at paper scale): a shard whose files no longer match its manifest (deleted, resized
    or modified after it) loses its manifest, so it reruns and everything downstream."""
    if not workflow.is_main_process:
        return  # cluster and subprocess jobs run what the main process planned
    stale = withdraw_stale_manifests(needed_manifests())
    for manifest, problems in stale.items():
        logger.warning(
            f"{Path(manifest).parent}: {len(problems)} file(s) differ from its manifest "
            f"({'; '.join(problems[:3])}); manifest withdrawn (manifest.stale.json): "
            "the shard and what depends on it rerun"
        )


def training_runs():
    """(method, n images, seed) of every run: the methods at n_train, plus the baseline
    on the extra data sizes that price a dual in real-image equivalents."""
    train = config["train"]
    n_train = config["dataset"]["n_train"]
    runs = [
        (method, n_train, seed)
        for method in train["methods"]
        for seed in train["seeds"]
    ]
    if train.get("zeroshot", False):
        runs.append(
            ("zeroshot", n_train, train["seeds"][0])
        )  # the untrained starting model
    runs += [
        ("baseline", size, seed)
        for size in train["data_sizes"]
        for seed in train["seeds"]
        if size != n_train
    ]
    return runs


def run_dir(stage, method, n, seed):
    return f"{RESULTS}/{stage}/{method}/n{n}/seed{seed}"


def eval_outputs():
    if not synthetic_suites():
        return []
    return [f"{run_dir('eval', m, n, s)}/synthetic.csv" for m, n, s in training_runs()]


def manifold_images():
    """Training originals (with all their duals) that the manifold check embeds."""
    return min(
        config["eval"].get("manifold_images", DEFAULT_MANIFOLD_IMAGES),
        config["dataset"]["n_train"],
    )


def manifold_outputs():
    """The manifold table (rule eval_manifold), when the study trains the baseline that
    measures and a method on duals; eval.manifold_images: 0 leaves it out."""
    methods = config["train"]["methods"]
    if manifold_images() == 0 or "baseline" not in methods:
        return []
    if not any(uses_duals(method) for method in methods):
        return []
    return [f"{RESULTS}/eval/manifold.csv"]


def train_summaries():
    return [f"{run_dir('train', m, n, s)}/summary.json" for m, n, s in training_runs()]


def train_logs():
    return [f"{run_dir('train', m, n, s)}/train_log.csv" for m, n, s in training_runs()]


# ---- real benchmarks (rules/real_benchmarks.smk)

# names and config logic: the registry (dualclip/eval/benchmarks/registry.py) and the stage library
BENCHMARK_NAMES = list(BENCHMARK_REGISTRY)
BENCHMARK_SOURCES = benchmark_stage.sources()


def configured_benchmarks():
    """Benchmark name -> its config section with defaults (empty when none is configured)."""
    return benchmark_stage.configured(config)


def benchmark_section(name):
    return benchmark_stage.section(config, name)


def benchmark_image_archives(wildcards):
    """Marker files of the image archives that `download_images: true` asks for (image
    sources without a configured folder that have a public archive). Shared archives
    download once."""
    archives = benchmark_stage.archives_needed(
        wildcards.benchmark, benchmark_section(wildcards.benchmark)
    )
    return [
        f"{RESULTS}/benchmark_data/images/{archive}/archive.json"
        for archive in archives
    ]


def benchmark_local_annotations(wildcards):
    """Files of a local `annotations` folder (or file), so that editing them reruns the job."""
    settings = benchmark_section(wildcards.benchmark)
    local = settings["annotations"]
    if not local:
        return []
    if Path(local).is_file():
        return [local]
    names = benchmark_stage.needed_files(wildcards.benchmark, settings)
    return [str(Path(local) / name) for name in names if (Path(local) / name).is_file()]


def benchmark_eval_outputs():
    """Score CSVs of every training run on every configured benchmark and, with a
    `zeroshot_classification:` section, on zero-shot classification (rules/eval.smk)."""
    names = list(configured_benchmarks())
    if config.get("zeroshot_classification"):
        names.append("classification")
    return [
        f"{run_dir('eval', m, n, s)}/{b}.csv"
        for m, n, s in training_runs()
        for b in names
    ]
