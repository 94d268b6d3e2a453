rule data:
    """Render (shapes) or fetch (coco) one shard of a split: image + ground truth per slot."""
    input:
        plan.data_prerequisites(config),
    output:
        manifest=plan.shard_manifest(config, "data"),
    log:
        f"{RESULTS}/logs/data/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/{{split}}/{{shard}}.tsv"
    group:
        "shards"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        dataset=plan.without_sizes(config["dataset"]),
        shard_size=SHARD_SIZE,
        n_images=shard_image_count,
    script:
        "../scripts/data.py"


rule prepare_coco:
    """COCO annotations in dataset.root (fetched, verified and safely extracted when allowed)."""
    output:
        f"{RESULTS}/data/coco_prepared.json",
    log:
        f"{RESULTS}/logs/data/prepare_coco.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        dataset=plan.without_sizes(config["dataset"]),
    script:
        "../scripts/prepare_coco.py"
