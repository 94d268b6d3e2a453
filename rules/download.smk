rule download:
    """Render (shapes) or fetch (coco) one shard of a split: image + ground truth per slot."""
    input:
        download_prerequisites,
    output:
        images=shard_outputs("data", "{slot}.png"),
        truth=shard_outputs("data", "{slot}.json"),
        manifest=f"{RESULTS}/data/{{split}}/{{shard}}/manifest.json",
    params:
        dataset=without_sizes(config["dataset"]),
        shard_size=SHARD_SIZE,
    log:
        f"{RESULTS}/logs/download/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download/{{split}}/{{shard}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    group:
        "shards"
    conda:
        ENV
    script:
        "../scripts/download.py"


rule prepare_coco:
    """COCO annotations in dataset.root (fetched, verified and safely extracted when allowed)."""
    output:
        f"{RESULTS}/data/coco_prepared.json",
    params:
        dataset=without_sizes(config["dataset"]),
    log:
        f"{RESULTS}/logs/download/prepare_coco.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        ENV
    script:
        "../scripts/prepare_coco.py"
