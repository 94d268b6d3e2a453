rule build_suites:
    """The synthetic benchmark suites on the held-out test split (items + clean renders)."""
    input:
        manifests("data", "test", config["dataset"]["n_test"]),
    output:
        suites=f"{RESULTS}/eval/suites.json",
        images=directory(f"{RESULTS}/eval/images"),
    log:
        f"{RESULTS}/logs/eval/build_suites.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        # only what the suites depend on: more train images or other train-time
        # inpainting settings must not rebuild them (and rerun every eval)
        n_test=config["dataset"]["n_test"],
        inpaint={
            k: v
            for k, v in config["inpaint"].items()
            if k in ("method", "radius", "dilation")
        },
        eval={key: config["eval"][key] for key in ("suites", "seed")},
        shard_size=SHARD_SIZE,
    script:
        "../scripts/build_suites.py"


rule eval_synthetic:
    """Score one trained model on every synthetic suite (with blind scores)."""
    input:
        model=f"{RESULTS}/train/{{method}}/n{{n}}/seed{{seed}}/model.pt",
        suites=f"{RESULTS}/eval/suites.json",
    output:
        scores=f"{RESULTS}/eval/{{method}}/n{{n}}/seed{{seed}}/synthetic.csv",
        per_item=f"{RESULTS}/eval/{{method}}/n{{n}}/seed{{seed}}/synthetic_items.csv",
    log:
        f"{RESULTS}/logs/eval/{{method}}/n{{n}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval/{{method}}/n{{n}}/seed{{seed}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        eval=config["eval"],
        device=config["device"],
    script:
        "../scripts/eval.py"
