rule build_suites:
    """The synthetic benchmark suites on the held-out test split (items + clean renders)."""
    input:
        manifests("data", "test", config["dataset"]["n_test"]),
    output:
        f"{RESULTS}/eval/suites.json",
    log:
        f"{RESULTS}/logs/eval/build_suites.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        dataset=config["dataset"],
        shard_size=SHARD_SIZE,
        inpaint=config["inpaint"],
        eval=config["eval"],
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
