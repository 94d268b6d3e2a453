import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.report import write_report
from dualclip.workflow import start

start(snakemake)
write_report(
    config=snakemake.params.config,
    score_files=list(snakemake.input.scores),
    summary_files=list(snakemake.input.summaries),
    log_files=list(snakemake.input.train_logs),
    outputs=snakemake.output,
    funnel_manifests=list(snakemake.input.funnel),
    expected_runs=snakemake.params.runs,
    template=snakemake.input.template,
    manifold_files=list(snakemake.input.manifold),
)
