import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.rewrite import run_shard
from dualclip.workflow import finish_shard, shard_files, start, with_device

start(snakemake)
size = snakemake.params.shard_size
run_shard(
    with_device(snakemake.params.rewrite, snakemake.params.device),
    shard_files(snakemake.input.parse, size, "{slot}.json"),
    shard_files(snakemake.input.detect, size, "{slot}.json"),
    list(snakemake.output.records),
)
finish_shard(snakemake)
