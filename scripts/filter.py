import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.filter import run_shard
from dualclip.workflow import finish_shard, shard_files, start, start_shard, with_device

start(snakemake)
config = snakemake.params.filter
start_shard(snakemake)
n_images = snakemake.params.n_images  # images in this shard (the last may be partial)
run_shard(
    with_device(config, snakemake.params.device),  # the filter's detector gets it unless its section sets one
    shard_files(snakemake.input.data, n_images, "{slot}.png"),
    shard_files(snakemake.input.parse, n_images, "{slot}.json"),
    shard_files(snakemake.input.detect, n_images, "{slot}.json"),
    shard_files(snakemake.input.inpaint, n_images, "{slot}/duals.json"),
    shard_files(snakemake.output.manifest, n_images, "{slot}.json"),
    # the CLIP check's dual texts: the rewrite stage's records (an input only when it is enabled)
    rewrite_files=shard_files(snakemake.input.rewrite, n_images, "{slot}.json") if snakemake.input.rewrite else None,
)
finish_shard(snakemake)
