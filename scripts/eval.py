import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.eval import evaluate_synthetic
from dualclip.workflow import start

start(snakemake)
evaluate_synthetic(
    snakemake.input.model, snakemake.input.suites, snakemake.output.scores, snakemake.output.per_item,
    device=snakemake.params.device, batch_size=snakemake.params.eval["batch_size"],
)
