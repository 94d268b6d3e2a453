rule inpaint:
    """Every non-empty subset of each image's found components removed: the dual images."""
    input:
        images=lambda w: slot_files("data", w.split, w.shard, "{slot}.png"),
        detect=lambda w: slot_files("detect", w.split, w.shard, "{slot}.json"),
        masks=lambda w: slot_files("detect", w.split, w.shard, "{slot}.masks.png"),
    output:
        records=shard_outputs("inpaint", "{slot}/duals.json"),
        manifest=f"{RESULTS}/inpaint/{{split}}/{{shard}}/manifest.json",
    params:
        inpaint=config["inpaint"],
        seed=config["dataset"]["seed"],
        device=config["device"],
    log:
        f"{RESULTS}/logs/inpaint/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/inpaint/{{split}}/{{shard}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    group:
        "shards"
    conda:
        ENV
    script:
        "../scripts/inpaint.py"
