import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.parse import run_shard
from dualclip.workflow import finish_shard, start

start(snakemake)
run_shard(snakemake.params.parse, list(snakemake.input.truth), list(snakemake.output.records))
finish_shard(snakemake)
