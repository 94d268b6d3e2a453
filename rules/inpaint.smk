rule inpaint:
    """Every non-empty subset of each image's found components removed: the dual images."""
    input:
        data=plan.shard_manifest(config, "data"),
        detect=plan.shard_manifest(config, "detect"),
    output:
        manifest=plan.shard_manifest(config, "inpaint"),
    log:
        f"{RESULTS}/logs/inpaint/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/inpaint/{{split}}/{{shard}}.tsv"
    group:
        "shards"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        shard_size=SHARD_SIZE,
        n_images=shard_image_count,
        inpaint=config["inpaint"],
        seed=config["dataset"]["seed"],
        device=config["device"],
    script:
        "../scripts/inpaint.py"
