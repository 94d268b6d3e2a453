import sys
from pathlib import Path

from snakemake.logging import logger

sys.path.insert(0, workflow.basedir)  # the dualclip package beside the workflow
from dualclip import plan
from dualclip.workflow import withdraw_stale_manifests
from dualclip.preflight import check_config, hold_results_lock
from dualclip.registry import get_backend
from dualclip.train.methods import method_wildcard
from dualclip.eval.benchmarks import stage as benchmark_stage

# What the workflow plans from the config (runs, shards, stage inputs, train parameters)
# is dualclip/plan.py; here are the input functions of wildcards and what needs Snakemake.
RESULTS = config["results_dir"]
SHARD_SIZE = config["shard_size"]
ENV = "../envs/dualclip.yaml"

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


def shard_image_count(wildcards):
    """Images in the job's shard (params of the shard rules)."""
    return plan.shard_image_count(config, wildcards.split, wildcards.shard)


def train_inputs(wildcards):
    """Shard manifests (not per-image files) of every stage the run's method reads."""
    return plan.train_inputs(config, wildcards.method, wildcards.n)


def report_template():
    """The report page's Jinja2 template: editing it rewrites the report."""
    return str(Path(workflow.basedir) / "report" / "report.html.j2")


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


def withdraw_stale_shards():
    """Per-image caching without per-image targets (which made the DAG build take minutes
    at paper scale): a shard whose files no longer match its manifest (deleted, resized
    or modified after it) loses its manifest, so it reruns and everything downstream."""
    if not workflow.is_main_process:
        return  # cluster and subprocess jobs run what the main process planned
    stale = withdraw_stale_manifests(plan.needed_manifests(config))
    for manifest, problems in stale.items():
        logger.warning(
            f"{Path(manifest).parent}: {len(problems)} file(s) differ from its manifest "
            f"({'; '.join(problems[:3])}); manifest withdrawn (manifest.stale.json): "
            "the shard and what depends on it rerun"
        )


# ---- real benchmarks (rules/real_benchmarks.smk)

# names and config logic: the registry (dualclip/eval/benchmarks/registry.py) and the stage library
BENCHMARK_NAMES = benchmark_stage.BENCHMARK_NAMES
BENCHMARK_SOURCES = benchmark_stage.sources()


def benchmark_section(wildcards):
    return benchmark_stage.section(config, wildcards.benchmark)


def benchmark_image_archives(wildcards):
    return plan.benchmark_image_archives(config, wildcards.benchmark)


def benchmark_local_annotations(wildcards):
    """Files of a local `annotations` folder (or file), so that editing them reruns the job."""
    settings = benchmark_section(wildcards)
    local = settings["annotations"]
    if not local:
        return []
    if Path(local).is_file():
        return [local]
    names = benchmark_stage.needed_files(wildcards.benchmark, settings)
    return [str(Path(local) / name) for name in names if (Path(local) / name).is_file()]
