"""The stage-backend registry (dualclip.registry) against config/schema.yaml and the backends themselves."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dualclip.filter import ClipCheckSettings, FilterSettings, RedetectorSettings
from dualclip.inpaint import InpaintSettings
from dualclip.parse import ParseSettings
from dualclip.registry import STAGES, Settings, available, backends, create, get_backend, register

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())["properties"]
# the keys of a stage's section that its own code reads, besides its backends' (and the selector)
STAGE_SETTINGS = {"parse": ParseSettings, "inpaint": InpaintSettings}
# dataset.n_train / n_val / n_test: the split sizes, read by the workflow (dualclip.plan)
WORKFLOW_KEYS = {"data": {"n_train", "n_val", "n_test"}}


def section_schema(stage: str) -> dict:
    return SCHEMA[STAGES[stage].section]


def keys_read(stage: str, feature: str | None = None) -> set[str]:
    found = set()
    for name in available(stage, feature):
        found |= backends(stage)[name].settings_class().config_keys()
    return found


def test_every_stage_registers_backends():
    for stage in STAGES:
        assert available(stage), f"{stage}: no backend registered"


@pytest.mark.parametrize("stage", list(STAGES))
def test_schema_enum_of_the_backend_key_is_the_registry(stage):
    enum = section_schema(stage)["properties"][STAGES[stage].selector]["enum"]
    assert sorted(enum) == sorted(available(stage)), f"{STAGES[stage].key}: schema enum {enum} vs registry {available(stage)}"


def test_filter_detector_enum_is_the_detectors_that_find_objects_in_new_images():
    enum = SCHEMA["filter"]["properties"]["detector"]["properties"]["backend"]["enum"]
    assert sorted(enum) == sorted(available("detect", feature="instances")) == ["owlv2", "yolo"]
    assert RedetectorSettings.backend in enum


@pytest.mark.parametrize("stage", ["parse", "rewrite"])
def test_fallback_enum_names_registered_backends_other_than_llm(stage):
    enum = set(section_schema(stage)["properties"]["fallback"]["enum"])
    assert enum - {"none"} == set(available(stage)) - {"llm"}  # an llm fallback would call the LM again
    llm_settings = backends(stage)["llm"].settings_class()
    assert llm_settings.defaults()["fallback"] in enum


@pytest.mark.parametrize("stage", list(STAGES))
def test_schema_keys_of_a_section_are_the_keys_its_stage_and_backends_read(stage):
    """A key in the schema that no settings dataclass reads is ignored silently; a key a backend
    reads that the schema lacks can never be set."""
    schema_keys = set(section_schema(stage)["properties"])
    stage_keys = STAGE_SETTINGS[stage].config_keys() if stage in STAGE_SETTINGS else set()
    read = {STAGES[stage].selector} | stage_keys | keys_read(stage) | WORKFLOW_KEYS.get(stage, set())
    assert schema_keys == read, (f"{STAGES[stage].section}: in the schema only {sorted(schema_keys - read)}, "
                                 f"read but not in the schema {sorted(read - schema_keys)}")


def test_filter_schema_keys_are_its_settings():
    schema = SCHEMA["filter"]["properties"]
    assert set(schema) == FilterSettings.config_keys()
    assert set(schema["clip"]["properties"]) == ClipCheckSettings.config_keys()
    assert set(schema["detector"]["properties"]) == RedetectorSettings.config_keys() | keys_read("detect", "instances")
    assert "device" not in FilterSettings.config_keys()  # set by scripts/filter.py, not by a config file


def walk(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}".lstrip("."), key, value
            yield from walk(value, f"{path}.{key}")


@pytest.mark.parametrize("section", ["dataset", "parse", "detect", "inpaint", "rewrite", "filter"])
def test_backend_defaults_are_not_repeated_in_the_schema(section):
    """The defaults live in the settings dataclasses; a schema `default:` would be a second copy
    (and the Snakefile validates with set_default=False, so it would not even apply)."""
    written = [path for path, key, _ in walk(SCHEMA[section]) if key == "default"]
    assert written == [], f"{section}: schema defaults at {written}; write them in the settings dataclass instead"


@pytest.mark.parametrize("stage", list(STAGES))
def test_registered_targets_and_settings_import_and_agree(stage):
    for name, backend in backends(stage).items():
        settings = backend.settings_class()
        assert issubclass(settings, Settings) and dataclasses.is_dataclass(settings), f"{stage}.{name}"
        defaults = backend.defaults()
        assert set(defaults) <= {item.name for item in dataclasses.fields(settings)}
        target = backend.load()
        assert callable(target), f"{stage}.{name}: {backend.target}"
        if isinstance(target, type):  # a backend class says its own registered name in records
            assert target.name == name, f"{backend.target}.name is {target.name!r}, registered as {name!r}"
        assert backend.description


def test_feature_instances_is_the_detectors_with_instances():
    for name, backend in backends("detect").items():
        assert ("instances" in backend.features) == hasattr(backend.load(), "instances"), name


@pytest.mark.parametrize(("stage", "call"), [
    ("parse", lambda: create("parse", {"backend": "regex", "vocabulary": "shapes"})),
    ("detect", lambda: create("detect", {"backend": "sam"})),
    ("inpaint", lambda: create("inpaint", {"backend": "photoshop"})),
    ("rewrite", lambda: create("rewrite", {"backend": "gpt"})),
    ("data", lambda: get_backend("data", "imagenet")),
])
def test_unknown_backend_error_names_the_key_and_every_registered_backend(stage, call):
    with pytest.raises(ValueError) as raised:
        call()
    message = str(raised.value)
    assert message.startswith(f"{STAGES[stage].key}: unknown {STAGES[stage].noun} ")
    for name in available(stage):
        assert repr(name) in message


def test_stage_getters_use_the_registry():
    from dualclip.detect import get_detector
    from dualclip.inpaint import get_inpainter
    from dualclip.rewrite import get_rewriter

    assert get_detector({"backend": "oracle"}).name == "oracle"
    assert get_inpainter({"backend": "opencv"}).name == "opencv"
    assert get_rewriter({"backend": "rule"}).empty_caption == "an empty background"
    with pytest.raises(ValueError, match=r"^filter\.detector\.backend: unknown backend 'nope'"):
        get_detector({"backend": "nope"}, key="filter.detector.backend")


def test_settings_read_their_own_keys_with_their_defaults():
    from dualclip.detect.owl import OwlSettings
    from dualclip.detect.yolo import YoloSettings

    section = {"backend": "yolo", "model": "m.pt", "sam_model": "sam", "segment": True}
    yolo = YoloSettings.from_config(section, "detect")
    assert (yolo.model, yolo.conf, yolo.batch_size, yolo.device) == ("m.pt", 0.25, 8, "auto")
    assert OwlSettings.from_config(section, "detect").conf == 0.2  # same key, the backend's own default
    assert yolo.config_key == "detect.model" and "config_key" not in YoloSettings.config_keys()


def test_missing_required_key_names_it():
    from dualclip.parse.spacy_parser import SpacySettings

    with pytest.raises(ValueError, match=r"parse: parse\.vocabulary not set"):
        SpacySettings.from_config({"backend": "spacy"}, "parse")


def test_filter_settings_of_the_embedded_default_and_coco():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    settings = FilterSettings.from_config(config["filter"], "filter")
    assert settings.redetector.backend == "yolo" and not settings.redetector.segment
    assert not settings.clip_check.enabled and tuple(settings.clip_check.image_cosine) == (0.6, 0.98)
    open_vocabulary = yaml.safe_load((REPO / "config" / "coco_open.yaml").read_text())["filter"]
    assert FilterSettings.from_config(open_vocabulary, "filter").clip_check.enabled


def test_a_name_registers_once():
    with pytest.raises(ValueError, match="registered twice"):
        register("detect", "oracle", "dualclip.detect.oracle:OracleDetector")
    with pytest.raises(ValueError, match="unknown stage"):
        register("train", "x", "x:y")


def test_listing_the_backends_loads_no_model_library():
    code = ("import sys; from dualclip.registry import STAGES, available; "
            "[available(stage) for stage in STAGES]; "
            "loaded = [name for name in ('torch', 'spacy', 'transformers', 'ultralytics', 'diffusers', 'open_clip') "
            "if name in sys.modules]; assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
