rule rewrite:
    """The dual text of every subset: the caption without the removed components, checked."""
    input:
        parse=plan.shard_manifest(config, "parse"),
        detect=plan.shard_manifest(config, "detect"),
        prompt=prompt_files("rewrite"),
    output:
        manifest=plan.shard_manifest(config, "rewrite"),
    log:
        f"{RESULTS}/logs/rewrite/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rewrite/{{split}}/{{shard}}.tsv"
    group:
        "shards"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        shard_size=SHARD_SIZE,
        n_images=shard_image_count,
        rewrite=config["rewrite"],
        device=config["device"],
    script:
        "../scripts/rewrite.py"
