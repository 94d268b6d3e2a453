rule filter:
    """Re-detect on every dual image: accept it only if the removed components are gone and the kept ones remain."""
    input:
        data=shard_manifest("data"),
        parse=shard_manifest("parse"),
        detect=shard_manifest("detect"),
        inpaint=shard_manifest("inpaint"),
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
        filter=config["filter"],
        device=config["device"],
    script:
        "../scripts/filter.py"
