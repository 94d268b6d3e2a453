import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.detect import run_shard
from dualclip.workflow import finish_shard, shard_files, start, start_shard, with_device

start(snakemake)
start_shard(snakemake)
n_images = snakemake.params.n_images  # images in this shard (the last may be partial)
run_shard(
    with_device(snakemake.params.detect, snakemake.params.device),
    shard_files(snakemake.input.data, n_images, "{slot}.png"),
    shard_files(snakemake.input.data, n_images, "{slot}.json"),
    shard_files(snakemake.input.parse, n_images, "{slot}.json"),
    shard_files(snakemake.output.manifest, n_images, "{slot}.json"),
)
finish_shard(snakemake)
