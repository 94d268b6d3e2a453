rule detect:
    """Masks of each parsed component: one JSON and one bit-packed mask PNG per image."""
    input:
        images=lambda w: slot_files("data", w.split, w.shard, "{slot}.png"),
        truth=lambda w: slot_files("data", w.split, w.shard, "{slot}.json"),
        parse=lambda w: slot_files("parse", w.split, w.shard, "{slot}.json"),
    output:
        records=shard_outputs("detect", "{slot}.json"),
        masks=shard_outputs("detect", "{slot}.masks.png"),
        manifest=f"{RESULTS}/detect/{{split}}/{{shard}}/manifest.json",
    params:
        detect=config["detect"],
        device=config["device"],
    log:
        f"{RESULTS}/logs/detect/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/detect/{{split}}/{{shard}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    group:
        "shards"
    conda:
        ENV
    script:
        "../scripts/detect.py"
