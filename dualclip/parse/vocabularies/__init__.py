"""Detector vocabularies: class -> synonyms, by name (``shapes``, ``coco``, ``open``) or file path.

A config names its vocabulary with a string because Snakemake merges layered config
files dictionary by dictionary: an inline vocabulary in ``config/coco.yaml`` would be
merged with the shapes vocabulary of ``config/config.yaml`` ("box" would still mean
square), while a string replaces the one below it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

BUILTIN = Path(__file__).resolve().parent


def resolve_vocabulary(value) -> dict[str, list[str]]:
    """A vocabulary given by builtin name, YAML file path or inline mapping.

    ``open`` (``dualclip.parse.open_vocabulary``) admits any concrete, removable noun; its
    table is the COCO one, the class names that known words keep ("man" -> person)."""
    from dualclip.parse.open_vocabulary import CANONICAL_VOCABULARY, is_open

    if is_open(value):
        return resolve_vocabulary(CANONICAL_VOCABULARY)
    if isinstance(value, dict):
        return {str(label): list(words or []) for label, words in value.items()}
    if isinstance(value, str):
        path = BUILTIN / f"{value}.yaml" if (BUILTIN / f"{value}.yaml").exists() else Path(value)
        if not path.exists():
            builtins = sorted(p.stem for p in BUILTIN.glob("*.yaml"))
            raise FileNotFoundError(f"parse.vocabulary: {value!r} is neither a builtin vocabulary {builtins} (or 'open') nor a YAML file")
        return resolve_vocabulary(yaml.safe_load(path.read_text()))
    raise ValueError("parse.vocabulary: give a builtin name (shapes, coco, open), a YAML file of class -> synonyms, or a mapping")
