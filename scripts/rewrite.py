import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.rewrite import run_shard
from dualclip.workflow import finish_shard, start, with_device

start(snakemake)
run_shard(
    with_device(snakemake.params.rewrite, snakemake.params.device),
    list(snakemake.input.parse),
    list(snakemake.input.detect),
    list(snakemake.output.records),
)
finish_shard(snakemake)
