import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from pathlib import Path

from dualclip.download import download_shard
from dualclip.workflow import finish_shard, shard_of, start

start(snakemake)
split, shard = shard_of(snakemake)
download_shard(snakemake.params.dataset, split, shard, snakemake.params.shard_size, Path(snakemake.output.truth[0]).parent)
finish_shard(snakemake)
