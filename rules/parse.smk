rule parse:
    """Key noun components (and NegCLIP swap negatives) of each caption of a shard."""
    input:
        data=plan.shard_manifest(config, "data"),
        prompt=prompt_files("parse"),
    output:
        manifest=plan.shard_manifest(config, "parse"),
    log:
        f"{RESULTS}/logs/parse/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/parse/{{split}}/{{shard}}.tsv"
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
        parse=config["parse"],
    script:
        "../scripts/parse.py"
