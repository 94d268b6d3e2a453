import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.eval import build
from dualclip.workflow import per_image_files, start

start(snakemake)
test_n = snakemake.params.dataset["n_test"]
build(snakemake.params.dataset, snakemake.params.inpaint, snakemake.params.eval,
      per_image_files(list(snakemake.input), test_n, snakemake.params.shard_size, "{slot}.png"),
      per_image_files(list(snakemake.input), test_n, snakemake.params.shard_size, "{slot}.json"), snakemake.output[0])
