rule filter:
    """Re-detect on every dual image: accept it only if the removed components are gone and the kept ones remain
    (and, with filter.clip, only if CLIP finds it closer to its dual text than to the caption).
    """
    input:
        data=shard_manifest("data"),
        parse=shard_manifest("parse"),
        detect=shard_manifest("detect"),
        inpaint=shard_manifest("inpaint"),
        rewrite=shard_manifest("rewrite") if clip_filter_enabled() else [],
    output:
        manifest=f"{RESULTS}/filter/{{split}}/{{shard}}/manifest.json",
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
        filter=filter_settings(),
        device=config["device"],
    script:
        "../scripts/filter.py"
