"""The benchmark registry: every real benchmark once, with its loader, scorer and literature.

In the style of open_clip's model registry (and dualclip.train.methods): ``REGISTRY`` maps a
name to a :class:`Benchmark`. The stage (dualclip.eval.benchmarks.stage), the scorer
(dualclip.eval.benchmarks.scoring) and the workflow (rules/common.smk) read it; the schema's
``benchmarks`` names are checked against it by a test. The files each benchmark needs (official
annotation URLs, image sources and archives) are in ``data/sources.json``, pinned checksums in
``data/sha256.json`` (:attr:`Benchmark.files`, :attr:`Benchmark.image_sources`).

Loaders and scorers import their modules when called, so reading the registry (the DAG build)
imports neither torch nor the loaders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable


@lru_cache(maxsize=None)
def data_json(name: str) -> dict:
    """A file of ``dualclip/eval/benchmarks/data/`` (sources.json, sha256.json), parsed once."""
    return json.loads(resources.files("dualclip.eval.benchmarks").joinpath(f"data/{name}").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    literature: str  # the paper (and the official code whose scoring rule is reproduced)
    # (annotation folder, piece -> image folder(s)) -> LoadResult (RetrievalSet for retrieval)
    load: Callable[[Path, dict], object]
    # per-item DataFrame -> rows of the long results format; None: retrieval (recall@k)
    summarise: Callable | None
    ties_go_to_positive: bool = False  # the official argmax rule: a tie with the original is correct
    uses_spacy: bool = False  # ARO's word-order perturbations tag captions with spaCy
    has_pieces: bool = False  # one annotation file per piece, chosen with `pieces:`

    @property
    def retrieval(self) -> bool:
        return self.summarise is None

    @property
    def files(self) -> dict[str, str]:
        """Official annotation file name -> URL (``gdrive:<id>`` for Google Drive)."""
        return dict(data_json("sources.json")["benchmarks"][self.name]["files"])

    @property
    def pieces(self) -> dict[str, str]:
        """Piece -> its image source (the unit skipped whole when its images are missing)."""
        return dict(data_json("sources.json")["benchmarks"][self.name]["pieces"])

    @property
    def image_sources(self) -> dict[str, dict]:
        """Image source -> its archive (or None) and where to get the images."""
        return dict(data_json("sources.json")["benchmarks"][self.name]["images"])


REGISTRY: dict[str, Benchmark] = {}


def register(benchmark: Benchmark) -> Benchmark:
    if benchmark.name in REGISTRY:
        raise ValueError(f"benchmark {benchmark.name!r} is registered twice")
    REGISTRY[benchmark.name] = benchmark
    return benchmark


def get_benchmark(name: str) -> Benchmark:
    if name not in REGISTRY:
        raise ValueError(f"unknown benchmark {name!r}; choose from {list(REGISTRY)}")
    return REGISTRY[name]


def benchmark_names(*, retrieval: bool | None = None) -> list[str]:
    """Registered names, in registration order; ``retrieval`` selects one kind."""
    return [name for name, b in REGISTRY.items() if retrieval is None or b.retrieval == retrieval]


# ---- loaders and scorers, imported when called


def _per_piece(loader_name: str):
    def load(ann: Path, folders: dict):
        from dualclip.eval import benchmarks
        from dualclip.eval.benchmarks.items import LoadResult

        loader, result = getattr(benchmarks, loader_name), LoadResult()
        for piece in folders:
            result.extend(loader(ann, folders[piece], subsets=[piece]))
        return result
    return load


def _load_valse(ann: Path, folders: dict):
    from dualclip.eval.benchmarks import load_valse

    return load_valse(ann, folders, pieces=list(folders))


def _whole(loader_name: str):
    def load(ann: Path, folders: dict):
        from dualclip.eval import benchmarks

        return getattr(benchmarks, loader_name)(ann, folders["all"])
    return load


def _order(name: str):
    def load(ann: Path, folders: dict):
        from dualclip.eval.benchmarks import load_order

        return load_order(ann / next(iter(get_benchmark(name).files)), folders["test"], benchmark=name, split="test")
    return load


def _load_karpathy(ann: Path, folders: dict):
    from dualclip.eval.benchmarks import load_karpathy

    return load_karpathy(ann / "coco_karpathy_test.json", folders["karpathy_test"])


def _scorer(function_name: str, *args):
    def summarise(per_item):
        from dualclip.eval.benchmarks import scoring

        return getattr(scoring, function_name)(per_item, *args)
    return summarise


SUGARCREPE_PAPER = "Hsieh et al., SugarCrepe, NeurIPS 2023 (RAIVNLab/sugar-crepe)"
ARO_PAPER = "Yuksekgonul et al., When and why vision-language models behave like bags-of-words, ICLR 2023 (mertyg/vision-language-models-are-bows)"

# registration order = the order of the config example and the report
register(Benchmark("sugarcrepe", "SugarCrepe: replace / swap / add an object, attribute or relation",
                   SUGARCREPE_PAPER, _per_piece("load_sugarcrepe"), _scorer("summarise_sugarcrepe"), has_pieces=True))
register(Benchmark("sugarcrepe_pp", "SugarCrepe++: two positives and a negative per image (ITT, TOT)",
                   "Dumpala et al., SugarCrepe++, NeurIPS 2024 Datasets and Benchmarks (Sri-Harsha/scpp)",
                   _per_piece("load_sugarcrepe_pp"), _scorer("summarise_sugarcrepe_pp"), has_pieces=True))
register(Benchmark("valse", "VALSE: existence, plurality, counting, relations, actions, coreference (acc_r)",
                   "Parcalabescu et al., VALSE, ACL 2022 (Heidelberg-NLP/VALSE)", _load_valse, _scorer("summarise_valse"),
                   has_pieces=True))
register(Benchmark("vg_relation", "ARO Visual Genome Relation", ARO_PAPER, _whole("load_vg_relation"),
                   _scorer("summarise_vg_relation")))
register(Benchmark("vg_attribution", "ARO Visual Genome Attribution", ARO_PAPER, _whole("load_vg_attribution"),
                   _scorer("summarise_vg_attribution")))
register(Benchmark("coco_order", "ARO COCO-Order: the caption against 4 word-order perturbations", ARO_PAPER,
                   _order("coco_order"), _scorer("summarise_order", "coco_order"), ties_go_to_positive=True,
                   uses_spacy=True))
register(Benchmark("flickr30k_order", "ARO Flickr30k-Order: the caption against 4 word-order perturbations",
                   ARO_PAPER, _order("flickr30k_order"), _scorer("summarise_order", "flickr30k_order"),
                   ties_go_to_positive=True, uses_spacy=True))
register(Benchmark("coco_retrieval", "COCO 5k Karpathy test: image-text retrieval recall@1/5/10",
                   "Karpathy & Fei-Fei, CVPR 2015 (split); Radford et al., CLIP, ICML 2021", _load_karpathy, None))
