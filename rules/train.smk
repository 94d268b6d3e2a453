rule train:
    """One (method, train-set size, seed) run; resumes from its checkpoint when killed."""
    input:
        unpack(train_inputs),
        model_config=model_config_file(),
    output:
        model=f"{RESULTS}/train/{{method}}/n{{n}}/seed{{seed}}/model.pt",
        log_csv=f"{RESULTS}/train/{{method}}/n{{n}}/seed{{seed}}/train_log.csv",
        summary=f"{RESULTS}/train/{{method}}/n{{n}}/seed{{seed}}/summary.json",
    log:
        f"{RESULTS}/logs/train/{{method}}/n{{n}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{method}}/n{{n}}/seed{{seed}}.tsv"
    conda:
        ENV
    threads: 8  # capped at --cores by Snakemake
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        model=config["model"],
        train=lambda w: plan.train_params(config, w.method),
        device=config["device"],
        n_val=config["dataset"]["n_val"],
        shard_size=SHARD_SIZE,
    script:
        "../scripts/train.py"
