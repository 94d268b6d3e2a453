rule build_suites:
    """The synthetic benchmark suites on the held-out test split (items + clean renders)."""
    input:
        plan.manifests(config, "data", "test", config["dataset"]["n_test"]),
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


rule eval_classification:
    """Zero-shot classification of one run (ImageNet-1k val, CIFAR-10/100 test; a dataset
    that is not there is skipped and listed): what a fine-tune costs on recognition."""
    input:
        model=f"{RESULTS}/train/{{method}}/n{{n}}/seed{{seed}}/model.pt",
    output:
        scores=f"{RESULTS}/eval/{{method}}/n{{n}}/seed{{seed}}/classification.csv",
        per_item=f"{RESULTS}/eval/{{method}}/n{{n}}/seed{{seed}}/classification_items.csv",
        skips=f"{RESULTS}/eval/{{method}}/n{{n}}/seed{{seed}}/classification_skips.csv",
    log:
        f"{RESULTS}/logs/eval_classification/{{method}}/n{{n}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval_classification/{{method}}/n{{n}}/seed{{seed}}.tsv"
    conda:
        ENV
    threads: 4  # image decoding workers; capped at --cores by Snakemake
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        datasets=config.get("zeroshot_classification") or {},
        device=config["device"],
        batch_size=config["eval"]["batch_size"],
    script:
        "../scripts/eval_classification.py"


rule eval_manifold:
    """Do dual images lie near the data manifold? The baseline of the first seed (it never
    saw a dual) embeds the first eval.manifold_images training originals and their duals:
    Fréchet distance, a dual-vs-original probe and the cosine distance, per inpaint
    backend and |S|."""
    input:
        model=plan.manifold_model(config),
        data=plan.manifests(config, "data", "train", plan.manifold_images(config)),
        inpaint=plan.manifests(config, "inpaint", "train", plan.manifold_images(config)),
    output:
        table=f"{RESULTS}/eval/manifold.csv",
    log:
        f"{RESULTS}/logs/eval/manifold.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval/manifold.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        n_images=plan.manifold_images(config),
        shard_size=SHARD_SIZE,
        seed=config["eval"]["seed"],
        device=config["device"],
        batch_size=config["eval"]["batch_size"],
    script:
        "../scripts/eval_manifold.py"
