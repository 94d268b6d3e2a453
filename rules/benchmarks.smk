# Real compositional benchmarks: SugarCrepe, VALSE, ARO (VG-Relation, VG-Attribution,
# COCO-Order, Flickr30k-Order) and COCO retrieval. Configured by the `benchmarks:` section
# (benchmark name -> {annotations, images, download_images, verify_checksums, pieces}; see
# config/benchmarks_example.yaml). Absent or empty section: no benchmark jobs.
# Sources and pinned checksums: dualclip/benchmarks/data/{sources,sha256}.json.
import json as _json
from pathlib import Path as _Path

BENCHMARK_NAMES = ["sugarcrepe", "valse", "vg_relation", "vg_attribution", "coco_order", "flickr30k_order", "coco_retrieval"]

with open(_Path(workflow.basedir) / "dualclip" / "benchmarks" / "data" / "sources.json") as _handle:
    BENCHMARK_SOURCES = _json.load(_handle)


def configured_benchmarks():
    """Benchmark name -> its config section with defaults (empty when none is configured)."""
    section = config.get("benchmarks") or {}
    unknown = [name for name in section if name not in BENCHMARK_NAMES]
    if unknown:
        raise ValueError(f"config benchmarks: unknown benchmark(s) {unknown}; choose from {BENCHMARK_NAMES}")
    defaults = {"annotations": None, "images": None, "download_images": False, "verify_checksums": True, "pieces": None}
    out = {name: {**defaults, **(settings or {})} for name, settings in section.items()}
    for name, settings in out.items():
        entry = BENCHMARK_SOURCES["benchmarks"][name]
        if isinstance(settings["images"], dict):
            bad = [key for key in settings["images"] if key not in entry["images"] and key not in entry["pieces"]]
            if bad:
                raise ValueError(f"config benchmarks.{name}.images: unknown key(s) {bad}; "
                                 f"image sources are {list(entry['images'])}")
    return out


def benchmark_section(name):
    benchmarks = configured_benchmarks()
    if name not in benchmarks:
        raise ValueError(f"benchmark {name!r} is not in the config's benchmarks: section "
                         f"(configured: {list(benchmarks)}); see config/benchmarks_example.yaml")
    return benchmarks[name]


def benchmark_pieces(name):
    """(piece, image source) pairs the benchmark evaluates (a piece is skipped whole when
    its images are missing); SugarCrepe and VALSE may select pieces with `pieces:`."""
    known = BENCHMARK_SOURCES["benchmarks"][name]["pieces"]
    wanted = benchmark_section(name)["pieces"] or list(known)
    unknown = [piece for piece in wanted if piece not in known]
    if unknown or (benchmark_section(name)["pieces"] and name not in ("sugarcrepe", "valse")):
        raise ValueError(f"config benchmarks.{name}.pieces: {unknown or wanted} not allowed; "
                         f"sugarcrepe and valse choose from their pieces, the others have none")
    return [(piece, known[piece]) for piece in wanted]


def benchmark_image_archives(wildcards):
    """Marker files of the image archives that `download_images: true` asks for: image
    sources without a configured folder that have a public archive (the same rule as
    dualclip.benchmarks.stage.archives_needed). Shared archives download once."""
    settings = benchmark_section(wildcards.benchmark)
    if not settings["download_images"]:
        return []
    sources = BENCHMARK_SOURCES["benchmarks"][wildcards.benchmark]["images"]
    images = settings["images"]
    archives = []
    for piece, source in benchmark_pieces(wildcards.benchmark):
        folder = images if isinstance(images, str) else (images or {}).get(piece) or (images or {}).get(source)
        archive = sources[source]["archive"]
        if not folder and archive and archive not in archives:
            archives.append(archive)
    return [f"{RESULTS}/benchmarks/images/{archive}/archive.json" for archive in archives]


def benchmark_local_annotations(wildcards):
    """Files of a local `annotations` folder (or file), so that editing them reruns the job."""
    settings = benchmark_section(wildcards.benchmark)
    local = settings["annotations"]
    if not local:
        return []
    if _Path(local).is_file():
        return [local]
    names = list(BENCHMARK_SOURCES["benchmarks"][wildcards.benchmark]["files"])
    if settings["pieces"]:
        names = [f"{piece}.json" for piece in settings["pieces"]]
    return [str(_Path(local) / name) for name in names if (_Path(local) / name).is_file()]


def benchmark_eval_outputs():
    """Score CSVs of every training run on every configured benchmark."""
    return [f"{run_dir('eval', m, n, s)}/{b}.csv" for m, n, s in training_runs() for b in configured_benchmarks()]


rule download_image_archive:
    """One image archive of the README's URLs (resumable, checksum recorded then verified,
    safe extraction); only requested by `download_images: true`."""
    output:
        f"{RESULTS}/benchmarks/images/{{archive}}/archive.json",
    params:
        archive=lambda w: BENCHMARK_SOURCES["archives"][w.archive],
    wildcard_constraints:
        archive="|".join(BENCHMARK_SOURCES["archives"]),
    localrule: True  # on a cluster, downloads run where the workflow runs (compute nodes often have no internet)
    log:
        f"{RESULTS}/logs/benchmarks/images/{{archive}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download_image_archive/{{archive}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=600,
    conda:
        ENV
    script:
        "../scripts/download_benchmark.py"


rule download_benchmark:
    """Annotation files of one benchmark (downloaded and verified, or checked and copied from
    a local folder) and a check of its image folders: ready.json."""
    input:
        archives=benchmark_image_archives,
        annotations=benchmark_local_annotations,
    output:
        ready=f"{RESULTS}/benchmarks/{{benchmark}}/ready.json",
    params:
        settings=lambda w: benchmark_section(w.benchmark),
    wildcard_constraints:
        benchmark="|".join(BENCHMARK_NAMES),
    localrule: True  # may download (see download_image_archive)
    log:
        f"{RESULTS}/logs/benchmarks/download/{{benchmark}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        ENV
    script:
        "../scripts/download_benchmark.py"


rule eval_benchmark:
    """Score one trained run on one real benchmark (official rules; skipped pieces and items listed)."""
    input:
        model=f"{RESULTS}/train/{{method}}/n{{n}}/seed{{seed}}/model.pt",
        ready=f"{RESULTS}/benchmarks/{{benchmark}}/ready.json",
    output:
        scores=f"{RESULTS}/eval/{{method}}/n{{n}}/seed{{seed}}/{{benchmark}}.csv",
        per_item=f"{RESULTS}/eval/{{method}}/n{{n}}/seed{{seed}}/{{benchmark}}_items.csv",
        skips=f"{RESULTS}/eval/{{method}}/n{{n}}/seed{{seed}}/{{benchmark}}_skips.csv",
    params:
        settings=lambda w: benchmark_section(w.benchmark),
        device=config["device"],
        batch_size=config["eval"]["batch_size"],
    wildcard_constraints:
        benchmark="|".join(BENCHMARK_NAMES),
    log:
        f"{RESULTS}/logs/eval_benchmark/{{method}}/n{{n}}/seed{{seed}}/{{benchmark}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval_benchmark/{{method}}/n{{n}}/seed{{seed}}/{{benchmark}}.tsv"
    threads: 4  # image decoding threads; capped at --cores by Snakemake
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        ENV
    script:
        "../scripts/eval_benchmark.py"
