import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from pathlib import Path

from dualclip.eval.benchmarks.stage import prepare, prepare_archive
from dualclip.workflow import start

start(snakemake)
if snakemake.rule == "download_image_archive":
    prepare_archive(snakemake.wildcards.archive, snakemake.config, snakemake.output[0])
else:
    prepare(snakemake.wildcards.benchmark, snakemake.config, Path(snakemake.output.ready).parent)
