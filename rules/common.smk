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


def download_prerequisites(wildcards):
    if config["dataset"]["name"] == "coco":
        return [f"{RESULTS}/data/coco_prepared.json"]
    return []


def synthetic_suites():
    """The synthetic benchmark suites need the synthetic world's ground truth."""
    return config["dataset"]["name"] == "shapes"


def uses_duals(method):
    return method.startswith("ours")


def uses_parse(method):
    return method in ("negclip", "ours+negclip")  # NegCLIP's swap negatives live in the parse records


def manifests(stage, split, n_images):
    """The shard manifests covering the first n_images of a split."""
    return [f"{RESULTS}/{stage}/{split}/{shard}/manifest.json" for shard in range(n_shards(n_images))]


def train_inputs(wildcards):
    """Shard manifests (not per-image files) of every stage the method reads."""
    n, method = int(wildcards.n), wildcards.method
    files = {"data": manifests("data", "train", n), "val": manifests("data", "val", config["dataset"]["n_val"])}
    files["parse"] = manifests("parse", "train", n) if uses_parse(method) else []
    files["rewrite"] = manifests("rewrite", "train", n) if uses_duals(method) else []
    files["inpaint"] = manifests("inpaint", "train", n) if uses_duals(method) else []
    files["filter"] = manifests("filter", "train", n) if uses_duals(method) and config["filter"]["enabled"] else []
    return files


def training_runs():
    """(method, n images, seed) of every run: the methods at n_train, plus the baseline
    on the extra data sizes that price a dual in real-image equivalents."""
    train = config["train"]
    n_train = config["dataset"]["n_train"]
    runs = [(method, n_train, seed) for method in train["methods"] for seed in train["seeds"]]
    if train.get("zeroshot", False):
        runs.append(("zeroshot", n_train, train["seeds"][0]))  # the untrained starting model
    runs += [("baseline", size, seed) for size in train["data_sizes"] for seed in train["seeds"] if size != n_train]
    return runs


def run_dir(stage, method, n, seed):
    return f"{RESULTS}/{stage}/{method}/n{n}/seed{seed}"


def eval_outputs():
    if not synthetic_suites():
        return []
    return [f"{run_dir('eval', m, n, s)}/synthetic.csv" for m, n, s in training_runs()]


def train_summaries():
    return [f"{run_dir('train', m, n, s)}/summary.json" for m, n, s in training_runs()]


def train_logs():
    return [f"{run_dir('train', m, n, s)}/train_log.csv" for m, n, s in training_runs()]


def n_train_shards_for_download():
    sizes = [config["dataset"]["n_train"], *config["train"]["data_sizes"]]
    return n_shards(max(sizes))
