rule detect:
    """Masks of each parsed component: one JSON and one bit-packed mask PNG per image."""
    input:
        data=plan.shard_manifest(config, "data"),
        parse=plan.shard_manifest(config, "parse"),
    output:
        manifest=plan.shard_manifest(config, "detect"),
    log:
        f"{RESULTS}/logs/detect/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/detect/{{split}}/{{shard}}.tsv"
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
        detect=config["detect"],
        device=config["device"],
    script:
        "../scripts/detect.py"
