import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.train import run
from dualclip.workflow import start

start(snakemake)
run(
    model=snakemake.params.model,
    # checkpoint_every does not change the result, so it is read here, not a param
    train={**snakemake.params.train, "checkpoint_every": snakemake.config["train"].get("checkpoint_every", 100)},
    device=snakemake.params.device,
    method=snakemake.wildcards.method,
    seed=int(snakemake.wildcards.seed),
    inputs=snakemake.input,
    n_images=int(snakemake.wildcards.n),
    n_val=snakemake.params.n_val,
    shard_size=snakemake.params.shard_size,
    out_dir=snakemake.output.model.rsplit("/", 1)[0],
)
