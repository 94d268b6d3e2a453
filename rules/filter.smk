rule filter:
    """Re-detect on every dual image: accept it only if the removed components are gone and the kept ones remain."""
    input:
        images=lambda w: slot_files("data", w.split, w.shard, "{slot}.png"),
        parse=lambda w: slot_files("parse", w.split, w.shard, "{slot}.json"),
        detect=lambda w: slot_files("detect", w.split, w.shard, "{slot}.json"),
        masks=lambda w: slot_files("detect", w.split, w.shard, "{slot}.masks.png"),
        duals=lambda w: slot_files("inpaint", w.split, w.shard, "{slot}/duals.json"),
    output:
        records=shard_outputs("filter", "{slot}.json"),
        manifest=f"{RESULTS}/filter/{{split}}/{{shard}}/manifest.json",
    params:
        filter=config["filter"],
        device=config["device"],
    log:
        f"{RESULTS}/logs/filter/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/filter/{{split}}/{{shard}}.tsv"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=60,
    group:
        "shards"
    conda:
        ENV
    script:
        "../scripts/filter.py"
