import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.parse import run_shard
from dualclip.workflow import finish_shard, shard_files, start

start(snakemake)
size = snakemake.params.shard_size
run_shard(snakemake.params.parse, shard_files(snakemake.input.data, size, "{slot}.json"), list(snakemake.output.records))
finish_shard(snakemake)
