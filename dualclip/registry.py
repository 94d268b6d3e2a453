"""The stage backends: every backend of every stage once, with its settings and their defaults.

In the style of open_clip's model registry (and of :mod:`dualclip.train.methods`): each stage
package (``dualclip/<stage>/__init__.py``) registers its backends by name; ``create(stage,
section)`` builds the one a config section names; ``available(stage)`` lists the names, for error
messages, the pre-flight checks and the test that holds ``config/schema.yaml``'s enums to them.
A backend is registered as ``"module:attribute"`` strings, imported only when it is used, so
listing the backends loads no model library (the parse stage keeps torch out, the Snakefile's
pre-flight check stays fast).

Each backend's defaults are written once, in its settings dataclass (a :class:`Settings`: every
key of the config section it reads, with its default), as ``data/shapes.WorldConfig`` did
first. Not the schema's ``default:`` with ``validate(set_default=True)``, because (1) the rules
pass the config sections as params: filling the defaults into the config would change every
rule's params and rerun every finished shard; (2) one key means different things per backend
(``detect.conf``: 0.25 for YOLO, 0.2 for OWLv2; ``parse.batch_size``: spaCy's 256 texts, the
LM's 8 prompts), which one schema default cannot say; (3) a backend built from a dict outside
the workflow (tests, ``benchmarks/``) gets the same defaults as the workflow.
"""

from __future__ import annotations

import importlib
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Mapping


def internal(default=MISSING, **kwargs):
    """A settings field the workflow or a calling stage sets, not the config file (so not in
    the schema), e.g. the device filled in from the top-level ``device``."""
    return field(default=default, metadata={"internal": True}, **kwargs)


class Settings:
    """Base of a settings dataclass (``@dataclass(frozen=True, kw_only=True)``): its fields are
    the config keys one backend (or stage) reads, their defaults its defaults."""

    @classmethod
    def from_config(cls, section: Mapping[str, Any], where: str = "config"):
        """The settings in a config section: its own keys; the other keys of the section (another
        backend's, the stage's) are not this backend's business. ``where`` names the section in
        the error about a missing required key ("parse")."""
        own = {item.name: section[item.name] for item in fields(cls) if item.name in section}
        missing = [item.name for item in fields(cls)
                   if item.name not in own and item.default is MISSING and item.default_factory is MISSING]
        if missing:
            raise ValueError(f"{where}: {', '.join(f'{where}.{name}' for name in missing)} not set; "
                             f"{cls.__name__} needs it (see config/schema.yaml)")
        return cls(**own)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every key with a default, and its default."""
        found = {}
        for item in fields(cls):
            if item.default is not MISSING:
                found[item.name] = item.default
            elif item.default_factory is not MISSING:
                found[item.name] = item.default_factory()
        return found

    @classmethod
    def config_keys(cls) -> set[str]:
        """The keys a config file may set (the schema's properties), internal fields left out."""
        return {item.name for item in fields(cls) if not item.metadata.get("internal")}


@dataclass(frozen=True, kw_only=True)
class NoSettings(Settings):
    """A backend that reads no key besides the one that selects it."""


@dataclass(frozen=True)
class Stage:
    name: str
    section: str  # its config section
    selector: str  # the key of the section that names the backend
    noun: str = "backend"  # what the error message calls a backend ("unknown dataset 'x'")

    @property
    def key(self) -> str:
        return f"{self.section}.{self.selector}"


# the stages with backends; dualclip.<stage> registers them when imported
STAGES = {stage.name: stage for stage in [
    Stage("data", "dataset", "name", noun="dataset"),
    Stage("parse", "parse", "backend"),
    Stage("detect", "detect", "backend"),
    Stage("inpaint", "inpaint", "backend"),
    Stage("rewrite", "rewrite", "backend"),
]}


def _resolve(reference: str):
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Backend:
    stage: str
    name: str
    target: str  # "module:attribute": the class built from a config section (data: the shard writer)
    settings: str | None  # "module:attribute": its Settings dataclass; None: it reads no key
    description: str
    features: frozenset[str] = frozenset()  # e.g. "instances": a detector that finds objects in new images

    def load(self):
        return _resolve(self.target)

    def settings_class(self) -> type[Settings]:
        return NoSettings if self.settings is None else _resolve(self.settings)

    def defaults(self) -> dict[str, Any]:
        return self.settings_class().defaults()


REGISTRY: dict[str, dict[str, Backend]] = {name: {} for name in STAGES}


def register(stage: str, name: str, target: str, settings: str | None = None, description: str = "",
             features: tuple[str, ...] = ()) -> Backend:
    if stage not in STAGES:
        raise ValueError(f"register: unknown stage {stage!r}; stages with backends: {list(STAGES)}")
    if name in REGISTRY[stage]:
        raise ValueError(f"{stage} backend {name!r} is registered twice")
    backend = Backend(stage, name, target, settings, description, frozenset(features))
    REGISTRY[stage][name] = backend
    return backend


def backends(stage: str) -> dict[str, Backend]:
    """The registered backends of a stage, in registration order (importing the stage
    package registers them)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages with backends: {list(STAGES)}")
    importlib.import_module(f"dualclip.{stage}")
    return REGISTRY[stage]


def available(stage: str, feature: str | None = None) -> list[str]:
    """The names of a stage's backends (those with ``feature``, when given)."""
    return [name for name, backend in backends(stage).items() if feature is None or feature in backend.features]


def one_of(names: list[str]) -> str:
    """['a', 'b', 'c'] -> "'a', 'b' or 'c'" (error messages)."""
    quoted = [repr(name) for name in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def get_backend(stage: str, name: str, key: str | None = None) -> Backend:
    """The backend registered as ``name``; an unknown name is an error naming ``key`` (the
    config key that chose it, default the stage's) and the names it may take."""
    choices = available(stage)
    if name not in choices:
        raise ValueError(f"{key or STAGES[stage].key}: unknown {STAGES[stage].noun} {name!r}; use {one_of(choices)}")
    return REGISTRY[stage][name]


def create(stage: str, section: Mapping[str, Any], key: str | None = None, **kwargs):
    """The backend a config section names, built from that section (``kwargs`` go to its class)."""
    return get_backend(stage, section[STAGES[stage].selector], key).load()(section, **kwargs)
