import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.eval import build
from dualclip.workflow import start

start(snakemake)
build(snakemake.params.dataset, snakemake.params.inpaint, snakemake.params.eval,
      list(snakemake.input.images), list(snakemake.input.truth), snakemake.output[0])
