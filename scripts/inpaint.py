import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.inpaint import run_shard
from dualclip.workflow import finish_shard, start, with_device

start(snakemake)
run_shard(
    with_device(snakemake.params.inpaint, snakemake.params.device),
    list(snakemake.input.images),
    list(snakemake.input.detect),
    list(snakemake.output.records),
    seed=snakemake.params.seed,
)
finish_shard(snakemake)
