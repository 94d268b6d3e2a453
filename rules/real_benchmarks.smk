# Real compositional benchmarks: SugarCrepe, SugarCrepe++, VALSE, ARO (VG-Relation, VG-Attribution,
# COCO-Order, Flickr30k-Order) and COCO retrieval. Configured by the `benchmarks:` section
# (benchmark name -> {annotations, images, download_images, verify_checksums, pieces}; see
# config/benchmarks_example.yaml). Absent or empty section: no benchmark jobs.
# Sources and pinned checksums: dualclip/eval/benchmarks/data/{sources,sha256}.json.
rule download_image_archive:
    """One image archive of the README's URLs (resumable, checksum recorded then verified,
    safe extraction); only requested by `download_images: true`."""
    output:
        f"{RESULTS}/benchmark_data/images/{{archive}}/archive.json",
    log:
        f"{RESULTS}/logs/real_benchmarks/images/{{archive}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download_image_archive/{{archive}}.tsv"
    wildcard_constraints:
        archive="|".join(BENCHMARK_SOURCES["archives"]),
    localrule: True  # on a cluster, downloads run where the workflow runs (compute nodes often have no internet)
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=600,
    params:
        archive=lambda w: BENCHMARK_SOURCES["archives"][w.archive],
    script:
        "../scripts/download_benchmark.py"


rule download_benchmark:
    """Annotation files of one benchmark (downloaded and verified, or checked and copied from
    a local folder) and a check of its image folders: ready.json."""
    input:
        archives=benchmark_image_archives,
        annotations=benchmark_local_annotations,
    output:
        ready=f"{RESULTS}/benchmark_data/{{benchmark}}/ready.json",
    log:
        f"{RESULTS}/logs/real_benchmarks/download/{{benchmark}}.log",
    wildcard_constraints:
        benchmark="|".join(BENCHMARK_NAMES),
    localrule: True  # may download (see download_image_archive)
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        settings=benchmark_section,
    script:
        "../scripts/download_benchmark.py"


rule eval_benchmark:
    """Score one trained run on one real benchmark (official rules; skipped pieces and items listed)."""
    input:
        model=f"{RESULTS}/train/{{method}}/n{{n}}/seed{{seed}}/model.pt",
        ready=f"{RESULTS}/benchmark_data/{{benchmark}}/ready.json",
    output:
        scores=f"{RESULTS}/eval/{{method}}/n{{n}}/seed{{seed}}/{{benchmark}}.csv",
        per_item=f"{RESULTS}/eval/{{method}}/n{{n}}/seed{{seed}}/{{benchmark}}_items.csv",
        skips=f"{RESULTS}/eval/{{method}}/n{{n}}/seed{{seed}}/{{benchmark}}_skips.csv",
    log:
        f"{RESULTS}/logs/eval_benchmark/{{method}}/n{{n}}/seed{{seed}}/{{benchmark}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval_benchmark/{{method}}/n{{n}}/seed{{seed}}/{{benchmark}}.tsv"
    wildcard_constraints:
        benchmark="|".join(BENCHMARK_NAMES),
    conda:
        ENV
    threads: 4  # image decoding threads; capped at --cores by Snakemake
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        settings=benchmark_section,
        device=config["device"],
        batch_size=config["eval"]["batch_size"],
    script:
        "../scripts/eval_benchmark.py"
