rule parse:
    """Key noun components (and NegCLIP swap negatives) of each caption of a shard."""
    input:
        truth=lambda w: slot_files("data", w.split, w.shard, "{slot}.json"),
    output:
        records=shard_outputs("parse", "{slot}.json"),
        manifest=f"{RESULTS}/parse/{{split}}/{{shard}}/manifest.json",
    params:
        parse=config["parse"],
    log:
        f"{RESULTS}/logs/parse/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/parse/{{split}}/{{shard}}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    group:
        "shards"
    conda:
        ENV
    script:
        "../scripts/parse.py"
