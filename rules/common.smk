import math

RESULTS = config["results_dir"]
SHARD_SIZE = config["shard_size"]
SLOTS = list(range(SHARD_SIZE))
ENV = "../envs/dualclip.yaml"
PY = "python"

wildcard_constraints:
    split="train|val|test",
    shard=r"\d+",
    method=r"[a-z_+]+",
    n=r"\d+",
    seed=r"\d+",


def n_shards(n_images):
    return math.ceil(int(n_images) / SHARD_SIZE)


def without_sizes(section):
    """A config section minus the image counts: raising n_* must not rerun finished shards."""
    return {key: value for key, value in section.items() if not key.startswith("n_")}


def slot_files(stage, split, shard, pattern):
    return expand(f"{RESULTS}/{stage}/{split}/{shard}/{pattern}", slot=SLOTS)


def shard_outputs(stage, pattern):
    return expand(RESULTS + "/" + stage + "/{{split}}/{{shard}}/" + pattern, slot=SLOTS)


def images_of(n):
    """(shard, slot) of the first n images of the train split."""
    return [(index // SHARD_SIZE, index % SHARD_SIZE) for index in range(int(n))]


def uses_duals(method):
    return method.startswith("ours")


def uses_parse(method):
    return method != "baseline"


def train_inputs(wildcards):
    files = {"images": [], "truth": [], "parse": [], "rewrite": [], "duals": []}
    for shard, slot in images_of(wildcards.n):
        files["images"].append(f"{RESULTS}/data/train/{shard}/{slot}.png")
        files["truth"].append(f"{RESULTS}/data/train/{shard}/{slot}.json")
        if uses_parse(wildcards.method):
            files["parse"].append(f"{RESULTS}/parse/train/{shard}/{slot}.json")
        if uses_duals(wildcards.method):
            files["rewrite"].append(f"{RESULTS}/rewrite/train/{shard}/{slot}.json")
            files["duals"].append(f"{RESULTS}/inpaint/train/{shard}/{slot}/duals.json")
    n_val = config["dataset"]["n_val"]
    files["val"] = [f"{RESULTS}/data/val/{s}/{slot}.json" for s, slot in images_of(n_val)]
    return files


def training_runs():
    """(method, n images, seed) of every run: the methods at n_train, plus the baseline
    on the extra data sizes that price a dual in real-image equivalents."""
    train = config["train"]
    n_train = config["dataset"]["n_train"]
    runs = [(method, n_train, seed) for method in train["methods"] for seed in train["seeds"]]
    runs += [("baseline", size, seed) for size in train["data_sizes"] for seed in train["seeds"] if size != n_train]
    return runs


def run_dir(stage, method, n, seed):
    return f"{RESULTS}/{stage}/{method}/n{n}/seed{seed}"


def eval_outputs():
    return [f"{run_dir('eval', m, n, s)}/synthetic.csv" for m, n, s in training_runs()]


def train_summaries():
    return [f"{run_dir('train', m, n, s)}/summary.json" for m, n, s in training_runs()]


def train_logs():
    return [f"{run_dir('train', m, n, s)}/train_log.csv" for m, n, s in training_runs()]


def n_train_shards_for_download():
    sizes = [config["dataset"]["n_train"], *config["train"]["data_sizes"]]
    return n_shards(max(sizes))
