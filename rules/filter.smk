rule filter:
    """Re-detect on every dual image: accept it only if the removed components are gone and the kept ones remain
    (and, with filter.clip, only if CLIP finds it closer to its dual text than to the caption).
    """
    input:
        data=plan.shard_manifest(config, "data"),
        parse=plan.shard_manifest(config, "parse"),
        detect=plan.shard_manifest(config, "detect"),
        inpaint=plan.shard_manifest(config, "inpaint"),
        rewrite=(
            plan.shard_manifest(config, "rewrite")
            if plan.clip_filter_enabled(config)
            else []
        ),
    output:
        manifest=plan.shard_manifest(config, "filter"),
    log:
        f"{RESULTS}/logs/filter/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/filter/{{split}}/{{shard}}.tsv"
    group:
        "shards"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        shard_size=SHARD_SIZE,
        n_images=shard_image_count,
        filter=plan.filter_settings(config),
        device=config["device"],
    script:
        "../scripts/filter.py"
