rule rewrite:
    """The dual text of every subset: the caption without the removed components, checked."""
    input:
        parse=lambda w: slot_files("parse", w.split, w.shard, "{slot}.json"),
        detect=lambda w: slot_files("detect", w.split, w.shard, "{slot}.json"),
    output:
        records=shard_outputs("rewrite", "{slot}.json"),
        manifest=f"{RESULTS}/rewrite/{{split}}/{{shard}}/manifest.json",
    params:
        rewrite=config["rewrite"],
        device=config["device"],
    log:
        f"{RESULTS}/logs/rewrite/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rewrite/{{split}}/{{shard}}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    group:
        "shards"
    conda:
        ENV
    script:
        "../scripts/rewrite.py"
