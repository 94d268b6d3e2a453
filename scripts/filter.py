import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.filter import run_shard
from dualclip.workflow import finish_shard, shard_files, start, with_device

start(snakemake)
config = snakemake.params.filter
size = snakemake.params.shard_size
run_shard(
    {**config, "detector": with_device(config.get("detector", {"backend": "yolo"}), snakemake.params.device)},
    shard_files(snakemake.input.data, size, "{slot}.png"),
    shard_files(snakemake.input.parse, size, "{slot}.json"),
    shard_files(snakemake.input.detect, size, "{slot}.json"),
    shard_files(snakemake.input.inpaint, size, "{slot}/duals.json"),
    list(snakemake.output.records),
)
finish_shard(snakemake)
