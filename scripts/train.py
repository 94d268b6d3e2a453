import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the dualclip package beside the workflow (conda envs)
from dualclip.train.distributed import launch
from dualclip.workflow import start

start(snakemake)
out_dir = snakemake.output.model.rsplit("/", 1)[0]
# checkpoint_every and loader_workers do not change the result: read here, not params
train = {
    **snakemake.params.train,
    "checkpoint_every": snakemake.config["train"].get("checkpoint_every", 100),
    "loader_workers": snakemake.config["train"].get("loader_workers", 0),
}
run_arguments = dict(
    model=snakemake.params.model,
    train=train,
    device=snakemake.params.device,
    method=snakemake.wildcards.method,
    seed=int(snakemake.wildcards.seed),
    # plain lists, so that a torchrun worker can read them back from JSON
    inputs={name: list(getattr(snakemake.input, name, [])) for name in ("data", "val", "parse", "rewrite", "inpaint", "filter")},
    n_images=int(snakemake.wildcards.n),
    n_val=snakemake.params.n_val,
    shard_size=snakemake.params.shard_size,
    out_dir=out_dir,
    # shared by the runs of every method and seed that embed the same images the same way
    neighbour_cache=f"{snakemake.config['results_dir']}/train/neighbour_cache",
)
# one process, or one per GPU through torchrun (train.nproc_per_node)
launch(run_arguments, nproc_per_node=int(train.get("nproc_per_node", 1)), work_dir=out_dir)
