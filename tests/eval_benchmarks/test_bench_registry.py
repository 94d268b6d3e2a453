"""The benchmark registry is the one list of benchmarks: schema, config example, sources,
stage, scorer and workflow read it."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dualclip.eval.benchmarks import scoring, stage
from dualclip.eval.benchmarks.registry import REGISTRY, benchmark_names, data_json, get_benchmark

REPO = Path(__file__).resolve().parents[2]


def test_schema_example_and_sources_name_exactly_the_registry():
    assert len(REGISTRY) == 8
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    assert schema["properties"]["benchmarks"]["propertyNames"]["enum"] == list(REGISTRY)
    example = yaml.safe_load((REPO / "config" / "benchmarks_example.yaml").read_text())["benchmarks"]
    assert list(example) == list(REGISTRY)
    assert list(data_json("sources.json")["benchmarks"]) == list(REGISTRY)


def test_every_benchmark_has_files_pieces_literature_and_a_scorer():
    for name, benchmark in REGISTRY.items():
        assert benchmark.name == name and benchmark.description and benchmark.literature
        assert benchmark.files, name
        assert set(benchmark.pieces.values()) <= set(benchmark.image_sources), name
        assert callable(benchmark.load)
        assert benchmark.retrieval == (name == "coco_retrieval")
    assert benchmark_names(retrieval=True) == ["coco_retrieval"]
    with pytest.raises(ValueError, match="unknown benchmark 'sugarcrep'.*sugarcrepe"):
        get_benchmark("sugarcrep")


def test_stage_and_scorer_derive_their_lists_from_the_registry():
    assert stage.BENCHMARK_NAMES == tuple(REGISTRY)
    assert stage.PIECE_BENCHMARKS == ("sugarcrepe", "sugarcrepe_pp", "valse")
    assert scoring.BENCHMARKS == tuple(benchmark_names(retrieval=False))
    assert scoring.ORDER_BENCHMARKS == {"coco_order", "flickr30k_order"}
    # the benchmarks whose perturbations need spaCy (preflight checks the pipeline for them)
    assert {name for name in REGISTRY if REGISTRY[name].uses_spacy} == scoring.ORDER_BENCHMARKS


def test_summarise_dispatches_through_the_registry():
    per_item = pd.DataFrame({"suite": ["test", "test"], "correct": [True, False],
                             "pos_score": [0.5, 0.2], "max_neg_score": [0.5, 0.3]})
    rows = scoring.summarise("coco_order", per_item)
    assert dict(zip(rows["metric"], rows["value"])) == {"accuracy": 50.0, "accuracy_strict": 0.0}
    with pytest.raises(ValueError, match="unknown benchmark 'coco_retrieval'"):
        scoring.summarise("coco_retrieval", per_item)


def test_configured_fills_defaults_and_refuses_unknown_names():
    config = {"benchmarks": {"valse": None, "sugarcrepe": {"pieces": ["add_att"]}, "vg_relation": False}}
    sections = stage.configured(config)
    assert list(sections) == ["valse", "sugarcrepe"]
    assert sections["valse"] == stage.DEFAULTS and sections["sugarcrepe"]["pieces"] == ["add_att"]
    assert stage.needed_files("sugarcrepe", sections["sugarcrepe"]) == ["add_att.json"]
    with pytest.raises(ValueError, match=r"unknown benchmark\(s\) \['valsee'\]"):
        stage.configured({"benchmarks": {"valsee": {}}})


def test_reading_the_registry_and_the_stage_logic_does_not_import_torch():
    # the DAG build (rules/common.smk) imports both: it must stay fast
    code = "import sys, dualclip.eval.benchmarks.stage, dualclip.eval.benchmarks.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
