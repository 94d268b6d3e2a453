import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.eval import build
from dualclip.workflow import per_image_files, start

start(snakemake)
n_test, size = snakemake.params.n_test, snakemake.params.shard_size
build(
    {"backend": "opencv", **snakemake.params.inpaint},
    snakemake.params.eval,
    per_image_files(list(snakemake.input), n_test, size, "{slot}.png"),
    per_image_files(list(snakemake.input), n_test, size, "{slot}.json"),
    snakemake.output.suites,
    snakemake.output.images,
)
