"""eval: one evaluation engine (``embed.py``, ``scoring.py``) for the synthetic suites
(``synthetic.py``, the stage functions here) and the real benchmarks (the ``benchmarks`` subpackage).

Kept light: importing it (and so ``dualclip.eval.benchmarks``' registry and stage logic, which the
DAG build reads) imports no torch; the functions import what they need when called.
"""

from __future__ import annotations

from dualclip.io import read_json

#: zero-shot classification suite -> the scene attribute it predicts (single-object scenes)
CLASSIFICATION_SUITES = {"zs_shape": "shape", "zs_colour": "colour"}
#: synthetic suite -> the fewest objects a scene needs to give it an item (others: one)
MIN_SCENE_OBJECTS = {
    **dict.fromkeys(("aro_relation", "aro_attribution", "sc_swap_obj", "sc_swap_att", "omission", "image_side",
                     "image_side_sham"), 2),
    "sc_replace_att": 3,  # an object whose colour another keeps, recoloured with a third one's colour
}


def suite_scene_problems(dataset: dict, suites: list[str]) -> list[str]:
    """The suites of ``eval.suites`` that no scene of dataset.min_objects..max_objects objects can build
    (checked before the run: build_suites would only find out after rendering the test split)."""
    # a key left out takes the world's default (1..4 objects), which builds every suite
    problems = []
    for suite in suites:
        if suite in CLASSIFICATION_SUITES and dataset.get("min_objects", 1) > 1:
            problems.append(f"config eval.suites: {suite} classifies single-object scenes but dataset.min_objects is "
                            f"{dataset['min_objects']}; set dataset.min_objects: 1, or leave {suite} out of eval.suites")
        needed = MIN_SCENE_OBJECTS.get(suite, 1)
        if dataset.get("max_objects", needed) < needed:
            problems.append(f"config eval.suites: {suite} needs scenes of {needed} objects but dataset.max_objects is "
                            f"{dataset['max_objects']}; set dataset.max_objects: {needed} or more, or leave {suite} "
                            f"out of eval.suites")
    return problems


def build(inpaint: dict, eval_config: dict, images: list[str], truth: list[str], out_file: str, image_dir: str) -> dict:
    from dualclip.eval.synthetic import build_suites

    records = [(str(image), read_json(path)) for image, path in zip(images, truth)]
    # as in training: an image skipped at download (its placeholder) never becomes a test item
    skipped = [record for _, record in records if record.get("status") == "skipped"]
    if skipped:
        print(f"{len(skipped)} test images skipped at download are left out: "
              + "; ".join(f"{r.get('image_id')}: {r.get('reason')}" for r in skipped[:20]))
    records = [(image, record) for image, record in records if record.get("status") != "skipped"]
    counts = build_suites(inpaint, records, eval_config["suites"], int(eval_config["seed"]), out_file, image_dir)
    print("items per suite:", counts)
    return counts


def run_size(run: dict) -> int:
    """The training-set size a run was planned with (its ``n{n}``), not the images it kept."""
    if "n_train" not in run:
        raise ValueError(f"{run.get('method')} seed {run.get('seed')}: this checkpoint predates the recorded "
                         "n_train (code version " + str(run.get("code_version")) + "); rerun its train job "
                         "(snakemake --forcerun train) so that its scores carry the planned training-set size")
    return int(run["n_train"])


def label_with_run(summary, per_item, run: dict) -> None:
    """Lead every score row with the run it belongs to (method, n_train, seed) and the
    code version that trained it: one results format for synthetic and real benchmarks."""
    for frame in (summary, per_item):
        frame.insert(0, "seed", run["seed"])
        frame.insert(0, "n_train", run_size(run))
        frame.insert(0, "method", run["method"])
    summary["code_version"] = run["code_version"]


def evaluate_synthetic(model_file: str, suites_file: str, scores_file: str, per_item_file: str,
                       device: str = "auto", batch_size: int = 256):
    from dualclip.eval.synthetic import score_suites
    from dualclip.io import write_text
    from dualclip.runtime import resolve_device
    from dualclip.train.models import load_checkpoint_model

    model, preprocess, tokenizer, checkpoint = load_checkpoint_model(model_file, resolve_device(device))
    per_item, summary = score_suites(model, preprocess, tokenizer, read_json(suites_file), resolve_device(device), batch_size)
    label_with_run(summary, per_item, checkpoint["summary"])
    write_text(per_item_file, per_item.to_csv(index=False))
    write_text(scores_file, summary.to_csv(index=False))
    print(summary.to_string())
    return summary
