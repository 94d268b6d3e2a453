rule download:
    """Render (shapes) or fetch (coco) one shard of a split: image + ground truth per slot."""
    output:
        images=shard_outputs("data", "{slot}.png"),
        truth=shard_outputs("data", "{slot}.json"),
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
