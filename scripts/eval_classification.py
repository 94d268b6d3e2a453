import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.eval.benchmarks.classification import evaluate_classification
from dualclip.workflow import start

start(snakemake)
evaluate_classification(
    snakemake.input.model, dict(snakemake.params.datasets), snakemake.output.scores, snakemake.output.per_item,
    snakemake.output.skips, device=snakemake.params.device, batch_size=snakemake.params.batch_size,
    num_workers=snakemake.threads,
)
