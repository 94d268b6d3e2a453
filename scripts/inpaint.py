import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.inpaint import run_shard
from dualclip.workflow import finish_shard, shard_files, start, with_device

start(snakemake)
size = snakemake.params.shard_size
run_shard(
    with_device(snakemake.params.inpaint, snakemake.params.device),
    shard_files(snakemake.input.data, size, "{slot}.png"),
    shard_files(snakemake.input.detect, size, "{slot}.json"),
    list(snakemake.output.records),
    seed=snakemake.params.seed,
)
finish_shard(snakemake)
