import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.eval.manifold import measure_checkpoint
from dualclip.workflow import start

start(snakemake)
measure_checkpoint(
    snakemake.input.model, list(snakemake.input.data), list(snakemake.input.inpaint),
    n_images=snakemake.params.n_images, shard_size=snakemake.params.shard_size, out_file=snakemake.output.table,
    device=snakemake.params.device, batch_size=snakemake.params.batch_size, seed=snakemake.params.seed,
)
