import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.data import write_shard
from dualclip.workflow import finish_shard, shard_of, start, start_shard

start(snakemake)
split, shard = shard_of(snakemake)
folder = start_shard(snakemake)
# n_images: the last shard of a split may be partial
write_shard(snakemake.params.dataset, split, shard, snakemake.params.shard_size, folder, n_images=snakemake.params.n_images)
finish_shard(snakemake)
