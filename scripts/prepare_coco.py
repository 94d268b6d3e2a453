import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.data.coco import prepare_coco
from dualclip.io import write_json
from dualclip.workflow import start

start(snakemake)
root = prepare_coco(snakemake.params.dataset)
write_json(snakemake.output[0], {"root": str(root)})
