rule report:
    """The ablation report: findings, data funnel and compact table first; results table, a bar chart per suite,
    training curves, dual gallery.
    """
    input:
        scores=plan.eval_outputs(config) + plan.benchmark_eval_outputs(config),
        summaries=plan.train_summaries(config),
        train_logs=plan.train_logs(config),
        suites=lambda w: (
            [f"{RESULTS}/eval/suites.json"] if plan.synthetic_suites(config) else []
        ),
        gallery=plan.gallery_inputs(config),
        funnel=plan.funnel_inputs(config),
        manifold=plan.manifold_outputs(config),
        template=report_template(),
    output:
        html=report(
            f"{RESULTS}/report/report.html",
            caption="../report/report.rst",
            category="Report",
        ),
        table=report(
            f"{RESULTS}/report/scores.csv",
            caption="../report/scores.rst",
            category="Results",
        ),
        summary=report(
            f"{RESULTS}/report/summary.csv",
            caption="../report/summary.rst",
            category="Results",
        ),
        paired=report(
            f"{RESULTS}/report/paired_differences.csv",
            caption="../report/paired.rst",
            category="Results",
        ),
        equivalents=report(
            f"{RESULTS}/report/real_image_equivalents.csv",
            caption="../report/equivalents.rst",
            category="Results",
        ),
        figure=report(
            f"{RESULTS}/report/suites.png",
            caption="../report/suites.rst",
            category="Figures",
        ),
        curves=report(
            f"{RESULTS}/report/training_curves.png",
            caption="../report/curves.rst",
            category="Figures",
        ),
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        config=config,
        # every planned run: one without scores is listed on the first screen, not dropped
        runs=[list(run) for run in plan.training_runs(config)],
    script:
        "../scripts/report.py"
