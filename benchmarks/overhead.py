"""Overhead of each stage of the embedded default: a job's CPU time against its kernel's.

For one shard (``shard_size`` images of the train split) of the embedded default, per stage:

* **job**: the stage's script (``scripts/<stage>.py``) run as a fresh process the way
  Snakemake runs it: Snakemake's own preamble (``PythonScript.generate_preamble``: the
  pickled ``snakemake`` object with the input, output, params, wildcards and log that
  ``rules/<stage>.smk`` give, ``threads`` 1) followed by the script, run by
  ``bash -c 'python <file>'``. Its CPU time is the user + system time of that process
  tree (``resource.getrusage(RUSAGE_CHILDREN)``: bash, python, the git calls of
  ``code_version``). The stages run in order, each on the previous one's output.
* **kernel**: the stage's computation alone, in this process (``time.process_time``) on
  the same shard with its inputs already in memory: the shapes renderer
  (``world_record``) for data, spaCy ``nlp.pipe`` over the captions (one pass with the
  stage's pipeline, after a warm-up) for parse, ``OracleDetector.detect`` for detect, ``cv2.inpaint`` over every
  subset's mask for inpaint, ``RuleRewriter.rewrite`` for rewrite.
* **train**: the job is ``scripts/train.py`` for method ``ours`` on the shard's images
  with ``budget_images`` cut to ``--train-steps`` batches and no validation slice
  (``n_val`` 0: per-epoch validation of a one-shard run would dominate); the kernel is as
  many ``training_step`` calls (open_clip forward and loss, tokenisation included) with
  backward and AdamW step on preloaded pixels.

``overhead`` is the share of the job's CPU time spent outside its kernel,
(job - kernel) / job. CPU time, not wall time: the machine is shared and noisy; each shard
job and kernel runs ``--repeat`` times and the least time is kept, since contention only
adds. Both sides run one thread (``--threads``). Fixed costs (interpreter, imports, model
loads, manifest, git) weigh less on a bigger shard or more train steps.

    .venv/bin/python benchmarks/overhead.py                      # prints the table
    .venv/bin/python benchmarks/overhead.py --train-steps 300 --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dualclip.io import code_version, print_report, read_json  # noqa: E402

SHARD_STAGES = ["data", "parse", "detect", "inpaint", "rewrite"]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def named(cls, items: dict):
    """A Snakemake named list (input, output, ...): a list value is flattened into a named slice."""
    out = cls()
    for name, value in items.items():
        start = len(out)
        if isinstance(value, list):
            out.extend(value)
            out._set_name(name, start, len(out))
        else:
            out.append(value)
            out._add_name(name)
    return out


def run_as_snakemake(script: Path, rule: str, folder: Path, threads: int, inputs: dict | None = None,
                     output: dict | None = None, params: dict | None = None, wildcards: dict | None = None,
                     log: str | None = None, config: dict | None = None) -> float:
    """CPU seconds of ``script`` run as Snakemake runs a ``script:`` rule: its preamble (the
    pickled ``snakemake`` object) and the script in one file, ``bash -c 'python <file>'``."""
    from snakemake.iocontainers import InputFiles, Log, OutputFiles, Params, ResourceList, Wildcards
    from snakemake.script import PythonScript
    from snakemake.sourcecache import LocalSourceFile

    preamble = PythonScript.generate_preamble(
        LocalSourceFile(str(script)), None, script.read_text(), str(script.parent), named(InputFiles, inputs or {}),
        named(OutputFiles, output or {}), Params(fromdict=params or {}), Wildcards(fromdict=wildcards or {}), threads,
        ResourceList(fromdict={"_cores": threads, "_nodes": 1}), Log([log] if log else []), config or {}, rule,
        None, None, None, None, None, 1, 0, True, None, True,
        preamble_addendum=f"__real_file__ = __file__; __file__ = {str(script)!r};",
    )
    job_file = folder / f"tmp.{rule}.py"
    job_file.write_text(preamble + script.read_text())
    before = children_cpu()
    done = subprocess.run(["bash", "-c", f"set -euo pipefail; {shlex.quote(sys.executable)} {shlex.quote(str(job_file))}"],
                          cwd=REPO, capture_output=True, text=True)
    cpu = children_cpu() - before
    if done.returncode != 0:
        log_text = Path(log).read_text() if log and Path(log).exists() else ""
        raise RuntimeError(f"{rule} job failed ({done.returncode}):\n{done.stderr[-3000:]}\n{log_text[-3000:]}")
    return cpu


def timed(function) -> float:
    started = time.process_time()
    function()
    return time.process_time() - started


class Shard:
    """One shard of the embedded default's train split, its folders and the rule parameters."""

    def __init__(self, config: dict, root: Path, threads: int):
        self.config, self.root, self.threads = config, root, threads
        root.mkdir(parents=True, exist_ok=True)
        self.size = int(config["shard_size"])
        self.n_images = min(self.size, int(config["dataset"]["n_train"]))
        self.wildcards = {"split": "train", "shard": "0"}

    def manifest(self, stage: str) -> str:
        return str(self.root / stage / "train" / "0" / "manifest.json")

    def files(self, stage: str, pattern: str) -> list[str]:
        folder = Path(self.manifest(stage)).parent
        return [str(folder / pattern.format(slot=slot)) for slot in range(self.n_images)]

    def params(self, stage: str) -> dict:
        # as rules/<stage>.smk give them
        config = self.config
        common = {"shard_size": self.size, "n_images": self.n_images}
        return {
            "data": {"dataset": {k: v for k, v in config["dataset"].items() if not k.startswith("n_")}, **common},
            "parse": {**common, "parse": config["parse"]},
            "detect": {**common, "detect": config["detect"], "device": config["device"]},
            "inpaint": {**common, "inpaint": config["inpaint"], "seed": config["dataset"]["seed"], "device": config["device"]},
            "rewrite": {**common, "rewrite": config["rewrite"], "device": config["device"]},
        }[stage]

    def inputs(self, stage: str) -> dict:
        return {
            "data": {},
            "parse": {"data": self.manifest("data")},
            "detect": {"data": self.manifest("data"), "parse": self.manifest("parse")},
            "inpaint": {"data": self.manifest("data"), "detect": self.manifest("detect")},
            "rewrite": {"parse": self.manifest("parse"), "detect": self.manifest("detect")},
        }[stage]

    def job(self, stage: str) -> float:
        return run_as_snakemake(REPO / "scripts" / f"{stage}.py", stage, self.root, self.threads, self.inputs(stage),
                                {"manifest": self.manifest(stage)}, self.params(stage), self.wildcards,
                                str(self.root / "logs" / stage / "train" / "0.log"), self.config)

    # ------------------------------------------------------------------ kernels

    def kernel(self, stage: str):
        """The stage's kernel as a call without arguments, its inputs already loaded."""
        return getattr(self, f"kernel_{stage}")()

    def kernel_data(self):
        from dualclip.data.shapes import WorldConfig, world_record

        world = WorldConfig.from_config(self.config["dataset"])
        return lambda: [world_record(world, "train", index) for index in range(self.n_images)]

    def kernel_parse(self):
        from dualclip.parse import DEFAULT_SPACY_MODEL
        from dualclip.parse.spacy_parser import UNUSED_COMPONENTS, load_spacy

        captions = [read_json(path)["caption"] for path in self.files("data", "{slot}.json")]
        # the pipeline the stage loads (its components, not spaCy's whole package)
        nlp = load_spacy(self.config["parse"].get("spacy_model", DEFAULT_SPACY_MODEL), exclude=list(UNUSED_COMPONENTS))
        list(nlp.pipe(["a red circle above two blue squares"] * 8))  # first-call set-up is not the kernel
        return lambda: list(nlp.pipe(captions, batch_size=256))

    def kernel_detect(self):
        from dualclip.detect import get_detector
        from dualclip.io import read_label_png, read_rgb
        from dualclip.parse import Component

        detector = get_detector(self.config["detect"])
        cases = []
        for image, truth, parse in zip(self.files("data", "{slot}.png"), self.files("data", "{slot}.json"),
                                       self.files("parse", "{slot}.json")):
            record = read_json(truth)
            record["labels"] = read_label_png(Path(truth).with_suffix(".labels.png"))
            components = [Component.from_dict(c) for c in read_json(parse)["components"]]
            if components:
                cases.append((read_rgb(image), components, record))
        return lambda: [detector.detect(*case) for case in cases]

    def kernel_inpaint(self):
        import cv2
        import numpy as np

        from dualclip.inpaint import dilate, nonempty_subsets
        from dualclip.inpaint.opencv import METHODS
        from dualclip.io import bits_to_masks, read_label_png, read_rgb

        settings = self.config["inpaint"]
        flag, radius = getattr(cv2, METHODS[settings.get("method", "telea")]), float(settings.get("radius", 3))
        work = []
        for image, detect in zip(self.files("data", "{slot}.png"), self.files("detect", "{slot}.json")):
            record = read_json(detect)
            found = [c["index"] for c in record["components"] if c["found"]]
            if not found:
                continue
            masks = bits_to_masks(read_label_png(Path(detect).parent / record["masks_file"]), len(record["components"]))
            pixels = np.ascontiguousarray(read_rgb(image))
            for subset in nonempty_subsets(found):
                union = dilate(np.logical_or.reduce([masks[i] for i in subset]), int(settings.get("dilation", 2)))
                work.append((pixels, union.astype(np.uint8)))
        return lambda: [cv2.inpaint(pixels, mask, radius, flag) for pixels, mask in work]

    def kernel_rewrite(self):
        from dualclip.detect import detected_indices
        from dualclip.parse import Component
        from dualclip.rewrite import get_rewriter
        from dualclip.subsets import nonempty_subsets

        rewriter = get_rewriter(self.config["rewrite"])
        cases = []
        for parse, detect in zip(self.files("parse", "{slot}.json"), self.files("detect", "{slot}.json")):
            parsed = read_json(parse)
            subsets = nonempty_subsets(detected_indices(read_json(detect)))
            if subsets:
                cases.append((parsed["caption"], [Component.from_dict(c) for c in parsed["components"]], subsets))
        return lambda: [rewriter.rewrite(*case) for case in cases]

    # ------------------------------------------------------------------ train

    def train_job(self, steps: int, method: str = "ours") -> tuple[float, int]:
        """CPU seconds of scripts/train.py for ``steps`` batches, and the steps it made."""
        from dualclip.train.methods import get_method

        train = {key: value for key, value in self.config["train"].items()
                 if key not in ("methods", "seeds", "data_sizes", "zeroshot", "checkpoint_every", "loader_workers")}
        train.update(compute="equal_compute", budget_images=steps * int(train["batch_images"]))
        train.pop("epochs", None)
        if not get_method(method).uses_neighbours:
            train.pop("negclip", None)
        out = self.root / "train" / method / f"n{self.n_images}" / "seed0"
        inputs = {"data": [self.manifest("data")], "val": [], "parse": [self.manifest("parse")],
                  "rewrite": [self.manifest("rewrite")], "inpaint": [self.manifest("inpaint")], "filter": []}
        config = {**self.config, "results_dir": str(self.root)}
        cpu = run_as_snakemake(
            REPO / "scripts" / "train.py", "train", self.root, self.threads, inputs,
            {"model": str(out / "model.pt"), "log_csv": str(out / "train_log.csv"), "summary": str(out / "summary.json")},
            {"model": self.config["model"], "train": train, "device": "cpu", "n_val": 0, "shard_size": self.size},
            {"method": method, "n": str(self.n_images), "seed": "0"}, str(self.root / "logs" / "train.log"), config)
        return cpu, int(read_json(out / "summary.json")["steps"])

    def train_kernel(self, steps: int, method: str = "ours"):
        import torch

        from dualclip.train import assemble_records
        from dualclip.train.batches import build_train_data
        from dualclip.train.distributed import Context
        from dualclip.train.loss import DualContrastiveLoss
        from dualclip.train.trainer import (
            autocast_factory,
            initial_model,
            iterate_plan,
            load_images,
            make_optimizer,
            training_step,
        )

        records = assemble_records(self.files("data", "{slot}.png"), self.files("data", "{slot}.json"),
                                   self.files("parse", "{slot}.json"), self.files("rewrite", "{slot}.json"),
                                   self.files("inpaint", "{slot}/duals.json"))
        train = self.config["train"]
        data = build_train_data(records, use_failed_rewrites=train.get("use_failed_rewrites", False))
        model, preprocess, tokenizer = initial_model(self.config["model"], 0)
        model.train()
        images = load_images(data.image_files, preprocess)
        optimizer = make_optimizer(model, train)
        device = torch.device("cpu")
        context, loss_fn = Context(device=device), DualContrastiveLoss()
        autocast = autocast_factory(device, train.get("precision", "amp"))
        plan = []
        for step, _, batch in iterate_plan(method, data, int(train["batch_images"]), 0, None, 0):
            if step >= steps:
                break
            plan.append(batch)

        def run() -> None:
            for batch in plan:
                losses = training_step(model, loss_fn, tokenizer, images[batch.images], batch, context, autocast)
                optimizer.zero_grad(set_to_none=True)
                losses["loss"].backward()
                optimizer.step()

        return run


def empty_job_cpu(root: Path, threads: int) -> float:
    """CPU of a job that does nothing: bash, the interpreter and Snakemake's preamble."""
    script = root / "empty.py"
    script.write_text("pass\n")
    return run_as_snakemake(script, "empty", root, threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--threads", type=int, default=1, help="threads of every job and kernel (the shard rules use 1)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each shard job and kernel; the least CPU time is kept (noise only adds)")
    parser.add_argument("--train-steps", type=int, default=30, help="batches of the train job, run once (0: no train row)")
    parser.add_argument("--keep", default=None, help="write the shard here and keep it (default: a temp folder)")
    parser.add_argument("--out", default=None, help="also append the table to this Markdown file (e.g. benchmarks/RESULTS.md)")
    args = parser.parse_args()
    # the jobs read these at start (dualclip.workflow.start); the kernels here read them on import
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "YOLO_OFFLINE"):
        os.environ.setdefault(variable, "1")
    config = yaml.safe_load(Path(args.config).read_text())
    backends = {"data": config["dataset"]["name"], "parse": config["parse"]["backend"],
                "detect": config["detect"]["backend"], "inpaint": config["inpaint"]["backend"],
                "rewrite": config["rewrite"]["backend"]}
    with tempfile.TemporaryDirectory(prefix="dualclip-overhead-") as temporary:
        root = Path(args.keep or temporary).resolve()
        root.mkdir(parents=True, exist_ok=True)
        shard = Shard(config, root / "results", args.threads)
        load = os.getloadavg()[0]
        floor = min(empty_job_cpu(root, args.threads) for _ in range(args.repeat))
        rows = []
        for stage in SHARD_STAGES:
            # a rerun of a shard job starts from an emptied shard folder, as Snakemake's would
            job = min(shard.job(stage) for _ in range(args.repeat))
            work = shard.kernel(stage)
            kernel = min(timed(work) for _ in range(args.repeat))
            backend = backends[stage]
            rows.append((f"{stage} ({backend})", job, kernel))
            print(f"{rows[-1][0]}: job {job:.2f} s, kernel {kernel:.2f} s", flush=True)
        train_note = ""
        if args.train_steps:
            import torch

            torch.set_num_threads(args.threads)
            job, steps = shard.train_job(args.train_steps)
            kernel = timed(shard.train_kernel(steps))
            rows.append((f"train (ours, {steps} steps)", job, kernel))
            print(f"{rows[-1][0]}: job {job:.2f} s, kernel {kernel:.2f} s", flush=True)
            train_note = f", torch {torch.__version__}"
    lines = [
        f"\n## {time.strftime('%Y-%m-%d')} — stage overhead (`benchmarks/overhead.py`), one shard of {shard.n_images} images",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f"{train_note}, {args.threads} thread(s), load average {load:.1f} at the start; code {code_version()}. "
        f"CPU seconds (user + system), the least of {args.repeat} runs (train: one). Job: the stage's script run as "
        f"Snakemake runs it, in a fresh process; kernel: the stage's computation alone, inputs in memory. "
        f"An empty job (bash, interpreter, Snakemake preamble) costs {floor:.2f} s.\n",
        "| stage | job CPU s | kernel CPU s | overhead % |",
        "|---|---|---|---|",
    ]
    for name, job, kernel in rows:
        lines.append(f"| {name} | {job:.2f} | {kernel:.2f} | {100 * (job - kernel) / job:.0f} |")
    print_report("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
