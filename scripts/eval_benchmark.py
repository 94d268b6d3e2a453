import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.eval.benchmarks.stage import evaluate
from dualclip.workflow import start

start(snakemake)
evaluate(
    snakemake.input.model, snakemake.wildcards.benchmark, snakemake.config,
    snakemake.output.scores, snakemake.output.per_item, device=snakemake.params.device,
    ready_file=snakemake.input.ready, skips_csv=snakemake.output.skips,
    batch_size=snakemake.params.batch_size, num_workers=snakemake.threads,
)
