import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.parse import run_shard
from dualclip.workflow import finish_shard, shard_files, start, start_shard

start(snakemake)
start_shard(snakemake)
n_images = snakemake.params.n_images  # images in this shard (the last may be partial)
run_shard(snakemake.params.parse, shard_files(snakemake.input.data, n_images, "{slot}.json"), shard_files(snakemake.output.manifest, n_images, "{slot}.json"))
finish_shard(snakemake)
