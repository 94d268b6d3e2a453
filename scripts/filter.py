import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.filter import run_shard
from dualclip.workflow import finish_shard, start, with_device

start(snakemake)
config = snakemake.params.filter
run_shard(
    {**config, "detector": with_device(config.get("detector", {"backend": "yolo"}), snakemake.params.device)},
    list(snakemake.input.images),
    list(snakemake.input.parse),
    list(snakemake.input.detect),
    list(snakemake.input.duals),
    list(snakemake.output.records),
)
finish_shard(snakemake)
