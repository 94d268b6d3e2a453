import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.detect import run_shard
from dualclip.workflow import finish_shard, start, with_device

start(snakemake)
run_shard(
    with_device(snakemake.params.detect, snakemake.params.device),
    list(snakemake.input.images),
    list(snakemake.input.truth),
    list(snakemake.input.parse),
    list(snakemake.output.records),
)
finish_shard(snakemake)
