"""Component coverage of the parse vocabularies on real COCO captions.

Parses the positive captions of SugarCrepe (COCO val2017 captions, ``../shared/benchmarks/
sugarcrepe/*.json``, each caption once) with the spacy backend and each vocabulary
(``coco``: the 80 classes YOLO knows; ``open``: any concrete, removable noun), and reports
components per caption, the share of captions with none, how many of spaCy's noun chunks
become components, and the chunk heads (lemmas) each vocabulary keeps or drops most often
(for the open vocabulary, with the word list that drops them). Prints a Markdown section;
``--out`` also writes it to a file.

    python benchmarks/coverage.py [--captions DIR] [--limit N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dualclip.io import code_version, write_text  # noqa: E402
from dualclip.parse import DEFAULT_SPACY_MODEL, get_parser  # noqa: E402
from dualclip.parse.open_vocabulary import exclusion  # noqa: E402
from dualclip.parse.spacy_parser import UNUSED_COMPONENTS, load_spacy  # noqa: E402

VOCABULARIES = ("coco", "open")
MAX_COMPONENTS = 8  # every component is counted (bit-packed masks allow 8); the runs keep 3
RUN_MAX_COMPONENTS = 3  # parse.max_components of config/coco.yaml
TOP = 15


def load_captions(folder: Path) -> list[str]:
    """The positive captions of every SugarCrepe file, each once, in a stable order."""
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no SugarCrepe annotation files (*.json) in {folder}; give --captions")
    captions = {record["caption"].strip() for path in files for record in json.loads(path.read_text()).values()}
    return sorted(caption for caption in captions if caption)


def measure(captions: list[str]) -> dict:
    nlp = load_spacy(DEFAULT_SPACY_MODEL, exclude=list(UNUSED_COMPONENTS))
    started = time.time()
    docs = list(nlp.pipe(captions, batch_size=256))
    chunks = [[chunk.root for chunk in doc.noun_chunks] for doc in docs]
    found = {"n_captions": len(captions), "n_chunks": sum(map(len, chunks)), "spacy_seconds": time.time() - started}
    for vocabulary in VOCABULARIES:
        parser = get_parser({"backend": "spacy", "vocabulary": vocabulary, "max_components": MAX_COMPONENTS}, nlp=nlp)
        results = parser.parse(captions, docs=docs)
        counts = [len(result.components) for result in results]
        kept, dropped, labels = Counter(), Counter(), Counter()
        for result, roots in zip(results, chunks):
            heads = {component.end for component in result.components}  # a component ends at its head
            for root in roots:
                (kept if root.idx + len(root.text) in heads else dropped)[root.lemma_.lower()] += 1
            labels.update(component.label for component in result.components)
        found[vocabulary] = {
            "components": sum(counts),
            "per_caption": sum(counts) / len(counts),
            "per_caption_capped": sum(min(count, RUN_MAX_COMPONENTS) for count in counts) / len(counts),
            "duals_capped": sum(2 ** min(count, RUN_MAX_COMPONENTS) - 1 for count in counts) / len(counts),
            "with_none": sum(count == 0 for count in counts),
            "chunks_kept": sum(kept.values()),
            "kept": kept.most_common(TOP),
            "dropped": dropped.most_common(TOP),
            "labels": len(labels),
        }
    return found


def markdown(found: dict, source: str) -> str:
    n = found["n_captions"]
    lines = [
        f"## {time.strftime('%Y-%m-%d')} — component coverage of the parse vocabularies on real COCO captions",
        f"Machine: {platform.machine()}, spaCy {DEFAULT_SPACY_MODEL}, spacy backend; code {code_version()}; {n:,} distinct positive captions of SugarCrepe ({source}); {found['n_chunks']:,} noun chunks. "
        f"Components counted up to {MAX_COMPONENTS} per caption (the runs keep the first {RUN_MAX_COMPONENTS}). "
        "`python benchmarks/coverage.py`.",
        "",
        "| vocabulary | components | per caption | per caption (first 3) | dual images per caption (first 3) | "
        "captions with none | noun chunks that become components | distinct labels |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for vocabulary in VOCABULARIES:
        v = found[vocabulary]
        lines.append(f"| {vocabulary} | {v['components']:,} | {v['per_caption']:.2f} | {v['per_caption_capped']:.2f} | {v['duals_capped']:.2f} | "
                     f"{v['with_none']:,} ({v['with_none'] / n:.1%}) | {v['chunks_kept']:,} "
                     f"({v['chunks_kept'] / found['n_chunks']:.0%}) | {v['labels']:,} |")
    for vocabulary in VOCABULARIES:
        v = found[vocabulary]
        kept = ", ".join(f"{lemma} {count}" for lemma, count in v["kept"])
        if vocabulary == "open":
            dropped = ", ".join(f"{lemma} {count} ({exclusion(lemma) or 'pronoun, name or verb form'})"
                                for lemma, count in v["dropped"])
        else:
            dropped = ", ".join(f"{lemma} {count}" for lemma, count in v["dropped"])
        lines += ["", f"`{vocabulary}` keeps most often (chunk head lemma, chunks): {kept}.", "",
                  f"`{vocabulary}` drops most often: {dropped}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=Path, default=REPO.parent / "shared" / "benchmarks" / "sugarcrepe",
                        help="folder of the SugarCrepe annotation files")
    parser.add_argument("--limit", type=int, default=None, help="the first N captions (sorted) only")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown section here")
    args = parser.parse_args()
    captions = load_captions(args.captions)[: args.limit]
    section = markdown(measure(captions), "../shared/benchmarks/sugarcrepe/*.json")
    print(section)
    if args.out:
        write_text(args.out, section)


if __name__ == "__main__":
    main()
