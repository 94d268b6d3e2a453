"""Issue 11, finding 5 (late failures) and the results_dir lock of finding 6.

Finding 5: a missing YOLO/SD/LLM/spaCy model, a vocabulary typo, an unknown open_clip name
and ``coco`` without benchmarks passed ``snakemake -n`` and failed in the first job of their
stage; ``filter.detector`` accepted any key; the LLM error did not name ``parse.model``.
Finding 6 (lock): two working directories sharing one ``results_dir`` ran side by side.

The dualclip.preflight checks are called directly; two dry runs and one real run (stopped
before its first job) go through Snakemake as a user would.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dualclip import preflight
from dualclip.preflight import PreflightError, ResultsDirInUse, check_config, hold_results_lock

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2"]
CONFIGS = [str(REPO / "config" / "config.yaml"), str(REPO / "tests" / "config_tiny.yaml")]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "YOLO_OFFLINE": "1"}


def snakemake(workdir: Path, *args: str, extra_config: dict | None = None) -> subprocess.CompletedProcess:
    """Snakemake on the tiny config (the pattern of tests/test_workflow.py), ``extra_config`` layered on top."""
    configs = list(CONFIGS)
    if extra_config:
        path = workdir / "extra_config.yaml"
        path.write_text(json.dumps(extra_config))  # JSON is YAML
        configs.append(str(path))
    command = [*SNAKEMAKE, "--configfile", *configs, "--directory", str(workdir), *args]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)


def default_config(*overlays: dict) -> dict:
    """config/config.yaml (+ overlays), merged as Snakemake merges --configfile."""
    from snakemake.utils import update_config

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for overlay in overlays:
        update_config(config, copy.deepcopy(overlay))
    return config


def problems(config: dict) -> list[str]:
    with pytest.raises(PreflightError) as raised:
        check_config(config)
    return raised.value.problems


@pytest.fixture
def offline(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("YOLO_OFFLINE", "1")


DUALS = {"train": {"methods": ["baseline", "ours"]}}


# --------------------------------------------------------------------------- finding 5 through Snakemake


def test_missing_models_and_typos_stop_the_dry_run_naming_each_key(tmp_path):
    # finding 5: each of these passed `snakemake -n` and failed in the first job of its stage
    overlay = {
        "parse": {"backend": "llm", "model": "models/absent-llm", "spacy_model": "en_core_web_absent",
                  "vocabulary": "shapez"},
        "detect": {"backend": "yolo", "model": "models/absent-yolo-seg.pt"},
        "inpaint": {"backend": "sd", "model": "models/absent-sd"},
        "rewrite": {"backend": "llm", "model": "models/absent-llm"},
        "filter": {"enabled": True, "detector": {"backend": "yolo"}},  # model: the default yolov8x-seg.pt
        "model": {"name": "dualclip-tiyn"},
    }
    result = snakemake(tmp_path, "-n", extra_config=overlay)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    for key, value in [("parse.model", "models/absent-llm"), ("rewrite.model", "models/absent-llm"),
                       ("detect.model", "models/absent-yolo-seg.pt"), ("inpaint.model", "models/absent-sd"),
                       ("filter.detector.model", "yolov8x-seg.pt"), ("parse.spacy_model", "en_core_web_absent"),
                       ("parse.vocabulary", "shapez"), ("model.name", "dualclip-tiyn")]:
        line = next((line for line in output.splitlines() if f"config {key}" in line), None)
        assert line is not None and value in line, (key, output[-4000:])
    assert "close: ['dualclip-tiny']" in output
    assert not (tmp_path / "results").exists()  # no job ran


def test_coco_without_benchmarks_stops_the_dry_run(tmp_path):
    # finding 5: coco with no benchmark trained and evaluated on nothing, found at the end
    result = snakemake(tmp_path, "-n", extra_config={"dataset": {"name": "coco"}})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "config benchmarks:" in output and "config/benchmarks_example.yaml" in output


def test_the_default_configs_pass_the_preflight():
    # guards against false alarms: the shipped shapes configs need nothing that is absent
    for extra in ({}, yaml.safe_load((REPO / "tests" / "config_tiny.yaml").read_text()),
                  yaml.safe_load((REPO / "config" / "shapes_full.yaml").read_text())):
        assert check_config(default_config(extra)) == []


# --------------------------------------------------------------------------- finding 5: each check


def test_llm_and_sd_models_are_folders_or_cached_hub_ids(tmp_path, offline, monkeypatch):
    llm = tmp_path / "llm"
    llm.mkdir()
    config = default_config(DUALS, {"parse": {"backend": "llm", "model": str(llm)},
                                    "inpaint": {"backend": "sd", "model": str(tmp_path / "sd")}})
    found = problems(config)
    assert any(line.startswith("config parse.model:") and "without config.json" in line for line in found), found
    assert any(line.startswith("config inpaint.model:") and str(tmp_path / "sd") in line for line in found), found
    (llm / "config.json").write_text("{}")
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "model_index.json").write_text("{}")
    assert check_config(config) == []
    # a hub id: offline it must be in the local Hugging Face cache
    config["parse"]["model"] = "someorg/some-chat-lm"
    assert any("parse.model" in line and "someorg/some-chat-lm" in line and "offline" in line for line in problems(config))
    from huggingface_hub import constants

    snapshot = tmp_path / "hub" / "models--someorg--some-chat-lm" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--someorg--some-chat-lm" / "refs").mkdir()
    (tmp_path / "hub" / "models--someorg--some-chat-lm" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert check_config(config) == []
    # online, a hub id that is not cached is downloaded by the first job: a warning, no error
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    config["parse"]["model"] = "otherorg/other-lm"
    assert [line for line in check_config(config) if "parse.model" in line and "downloaded" in line]


def test_yolo_weights_are_a_file_and_the_filter_default_is_checked(tmp_path, offline, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = default_config(DUALS, {"detect": {"backend": "yolo", "model": "weights/seg.pt"},
                                    "filter": {"enabled": True, "detector": {"backend": "yolo"}}})
    found = problems(config)
    assert any(line.startswith("config detect.model:") and "weights/seg.pt" in line for line in found), found
    # the filter's detector without a model falls back to yolov8x-seg.pt: said, not blamed on detect.model
    assert any(line.startswith("config filter.detector.model (not set: default yolov8x-seg.pt)") for line in found), found
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "seg.pt").write_bytes(b"weights")
    (tmp_path / "yolov8x-seg.pt").write_bytes(b"weights")
    assert check_config(config) == []
    # online, ultralytics downloads its own weights by bare name
    monkeypatch.delenv("YOLO_OFFLINE")
    (tmp_path / "yolov8x-seg.pt").unlink()
    assert [line for line in check_config(config) if "filter.detector.model" in line and "downloads" in line]


def test_models_of_stages_that_do_not_run_are_not_demanded(offline):
    config = default_config({"train": {"methods": ["baseline"]}, "detect": {"backend": "yolo", "model": "absent.pt"},
                             "inpaint": {"backend": "sd", "model": "absent-sd"},
                             "parse": {"backend": "llm", "model": "absent-llm"}})
    assert check_config(config) == []  # baseline reads no parse, detect or inpaint output


@pytest.mark.parametrize(("methods", "stages"), [
    (["baseline"], set()),
    (["negclip"], {"parse"}),  # swap negatives only
    (["ours@singletons"], {"parse", "detect", "inpaint", "rewrite"}),  # a subset policy in the name
    (["baseline", "ours_soft"], {"parse", "detect", "inpaint", "rewrite"}),
])
def test_the_stages_that_run_come_from_the_method_registry(methods, stages):
    assert preflight.stages_run(default_config({"train": {"methods": methods}})) == stages


def test_spacy_pipeline_must_be_installed():
    found = problems(default_config({"parse": {"spacy_model": "en_core_web_absent"}}))
    assert len(found) == 1 and found[0].startswith("config parse.spacy_model: spaCy pipeline 'en_core_web_absent'")
    # the ARO word-order benchmarks load their own pipeline, the one the pre-flight checks
    # (read from the source: importing aro loads torch)
    source = ast.parse((REPO / "dualclip" / "eval" / "benchmarks" / "aro.py").read_text())
    assert any(isinstance(node, ast.ImportFrom) and node.module == "dualclip.parse"
               and ("DEFAULT_SPACY_MODEL", "SPACY_MODEL") in {(a.name, a.asname) for a in node.names}
               for node in source.body)


def test_vocabulary_is_a_builtin_or_a_non_empty_yaml_file(tmp_path):
    found = problems(default_config({"parse": {"vocabulary": "shape"}}))
    assert len(found) == 1 and "config parse.vocabulary: 'shape'" in found[0] and "['coco', 'shapes']" in found[0]
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    assert "holds no class" in problems(default_config({"parse": {"vocabulary": str(empty)}}))[0]
    mine = tmp_path / "mine.yaml"
    mine.write_text("dog: [puppy]\n")
    assert check_config(default_config({"parse": {"vocabulary": str(mine)}})) == []


def test_open_clip_architecture_and_pretrained_tag():
    assert check_config(default_config({"model": {"name": "ViT-B-32-quickgelu", "pretrained": "openai"}})) == []
    found = problems(default_config({"model": {"name": "ViT-B-32-quickgelu", "pretrained": "opanai"}}))
    assert found[0].startswith("config model.pretrained: 'opanai'") and "'openai'" in found[0], found
    found = problems(default_config({"model": {"name": "ViT-B-32-quikgelu", "pretrained": "openai"}}))
    assert found[0].startswith("config model.name: 'ViT-B-32-quikgelu'") and "ViT-B-32-quickgelu" in found[0], found
    assert "QuickGELU" in problems(default_config({"model": {"name": "ViT-B-32", "pretrained": "openai"}}))[0]
    assert "none" in problems(default_config({"model": {"name": "dualclip-tiny", "pretrained": "openai"}}))[0]


def test_open_clip_names_read_from_its_files_match_open_clip():
    # the pre-flight reads open_clip's files instead of importing it (torch: seconds per DAG build);
    # compared in a fresh process: other tests register extra architectures in this one
    code = ("import json, open_clip\nfrom dualclip.train.models import register_model_configs\n"
            "register_model_configs()\n"
            "print(json.dumps({'models': sorted(open_clip.list_models()), 'tags': {m: sorted(open_clip."
            "list_pretrained_tags_by_model(m)) for m, _ in open_clip.list_pretrained()}}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(preflight.open_clip_architectures()) == expected["models"]
    assert {model: sorted(tags) for model, tags in preflight.open_clip_pretrained_tags().items()} == expected["tags"]


def test_the_preflight_imports_no_heavy_library():
    config = default_config(DUALS, {"model": {"name": "ViT-B-32-quickgelu", "pretrained": "openai"}})
    code = ("import json, sys\nfrom dualclip.preflight import check_config\n"
            f"check_config(json.loads({json.dumps(json.dumps(config))}))\n"
            "print(sorted(m for m in ('torch', 'open_clip', 'spacy', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=ENV, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_benchmark_copies_must_exist_and_missing_image_folders_are_announced(tmp_path):
    config = default_config({"benchmarks": {
        "sugarcrepe": {"annotations": str(tmp_path / "absent-annotations"), "images": str(tmp_path)},
        "valse": {"images": {"coco2017_val": str(tmp_path), "swig": str(tmp_path / "absent-swig")}}}})
    found = problems(config)
    assert len(found) == 1 and found[0].startswith("config benchmarks.sugarcrepe.annotations:"), found
    (tmp_path / "absent-annotations").mkdir()
    warnings = check_config(config)
    # a missing image folder skips its pieces (listed in ready.json, the stage's contract): warned before any job
    assert len(warnings) == 1 and warnings[0].startswith("config benchmarks.valse.images.swig:"), warnings



def test_missing_zero_shot_classification_folders_are_announced(tmp_path):
    # an absent dataset only skips itself (classification_skips.csv): warned before any job, not an error
    config = default_config({"zeroshot_classification": {"imagenet": str(tmp_path / "absent-imagenet"),
                                                         "cifar10": str(tmp_path), "cifar100": None}})
    warnings = check_config(config)
    assert len(warnings) == 1 and warnings[0].startswith("config zeroshot_classification.imagenet:"), warnings
    assert "classification_skips.csv" in warnings[0]

def test_coco_needs_a_benchmark():
    found = problems(default_config({"dataset": {"name": "coco"}}))
    assert len(found) == 1 and "config benchmarks:" in found[0] and "config/benchmarks_example.yaml" in found[0]
    # every benchmark left out (`<name>: false`) is no benchmark either
    assert problems(default_config({"dataset": {"name": "coco"}, "benchmarks": {"sugarcrepe": False}}))
    assert check_config(default_config({"dataset": {"name": "coco"}, "benchmarks": {"sugarcrepe": None}})) == []


def test_filter_detector_rejects_unknown_keys_and_the_shipped_configs_validate():
    # finding 5: `modle:` under filter.detector was accepted and the detector fell back to yolov8x-seg.pt
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = str(REPO / "config" / "schema.yaml")
    with pytest.raises(WorkflowError, match="'modle' was unexpected"):
        validate(default_config({"filter": {"detector": {"backend": "yolo", "modle": "models/seg.pt"}}}), schema,
                 set_default=False)
    for extra in ["config/coco.yaml", "config/shapes_full.yaml", "config/benchmarks_example.yaml", "tests/config_tiny.yaml"]:
        validate(default_config(yaml.safe_load((REPO / extra).read_text())), schema, set_default=False)


def test_llm_load_error_names_the_config_keys(tmp_path):
    # finding 5: the message said "the stage's 'model' key"
    from dualclip.llm import ChatLM

    with pytest.raises(OSError, match=r"set parse\.model \(parse stage\) or rewrite\.model \(rewrite stage\)"):
        ChatLM(str(tmp_path / "absent-model"), device="cpu")


# --------------------------------------------------------------------------- finding 6: the results_dir lock


def hold_in_another_process(results_dir: Path, workdir: Path) -> subprocess.Popen:
    """A process holding the results_dir lock (as a running workflow does) until killed."""
    code = ("import sys, time\nfrom dualclip.preflight import hold_results_lock\n"
            f"lock = hold_results_lock({str(results_dir)!r})\nprint('held', flush=True)\ntime.sleep(300)\n")
    workdir.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=workdir, stdout=subprocess.PIPE, text=True,
                              env={**ENV, "PYTHONPATH": str(REPO)})
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_holder_is_refused_naming_the_first_until_it_dies(tmp_path):
    results = tmp_path / "shared-results"
    holder = hold_in_another_process(results, tmp_path / "first")
    try:
        with pytest.raises(ResultsDirInUse) as refused:
            hold_results_lock(results)
        message = str(refused.value)
        for part in (f"pid {holder.pid}", socket.gethostname(), str(tmp_path / "first"), "config results_dir"):
            assert part in message, (part, message)
    finally:
        holder.send_signal(signal.SIGKILL)  # the kernel frees the lock however the holder ends
        holder.wait()
    lock = hold_results_lock(results)
    assert json.loads((results / ".dualclip.lock").read_text())["pid"] == os.getpid()
    lock.close()


def test_a_second_workflow_on_the_same_results_dir_stops_before_any_job_but_may_dry_run(tmp_path):
    results = tmp_path / "shared-results"
    holder = hold_in_another_process(results, tmp_path / "first")
    try:
        target = str(results / "data" / "val" / "0" / "manifest.json")  # one small data job
        second = tmp_path / "second"
        second.mkdir()
        planned = snakemake(second, "-n", target, extra_config={"results_dir": str(results)})
        assert planned.returncode == 0, (planned.stdout + planned.stderr)[-3000:]  # a dry run writes nothing
        run = snakemake(second, target, extra_config={"results_dir": str(results)})
        output = run.stdout + run.stderr
        assert run.returncode != 0 and f"pid {holder.pid}" in output and "in use by another" in output, output[-3000:]
        assert not (results / "data").exists()  # refused before its first job
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_suites_that_the_scenes_cannot_build_stop_the_preflight():
    # found at build_suites only after the test split was rendered, with "raise dataset.n_test" as the advice
    found = problems(default_config({"dataset": {"max_objects": 2}}))
    assert len(found) == 1 and found[0].startswith("config eval.suites: sc_replace_att needs scenes of 3 objects")
    assert "dataset.max_objects is 2" in found[0]
    found = problems(default_config({"dataset": {"min_objects": 2}}))
    assert [line.split(":")[1].split()[0] for line in found] == ["zs_shape", "zs_colour"]
    assert all("dataset.min_objects: 1" in line for line in found)
    suites = [suite for suite in default_config()["eval"]["suites"] if suite != "sc_replace_att"]
    assert check_config(default_config({"dataset": {"max_objects": 2}, "eval": {"suites": suites}})) == []
