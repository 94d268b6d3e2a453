"""The open vocabulary (``parse.vocabulary: open``): any concrete, removable noun is a component.

A noun phrase is a component when its head is a common noun (not a proper noun, not a
verb form) that names a thing one could remove from the picture. Left out, by the
head's lemma:

* scene nouns, the place the picture is of (kitchen, street, field, room, beach, ...), and
  the surfaces that fill its background (sky, ground, floor, grass, water, snow, wall,
  ...): an inpainter can only paint the same surface back, so the dual would be the
  original;
* relational nouns, which name a part of a place or of another object (top, front, side,
  middle, edge, ...), and collective or partitive nouns, whose real object follows "of"
  (group, bunch, pair, pile, ...): "a group of people" keeps "people";
* body parts, and garments worn on the body: they belong to a person (or animal) of the
  caption; kept, it would be left without them, removed, they go with it;
* nouns that name no visible thing (picture, view, time, game, something, ...).

The label, what the detector is prompted with, is the head's lemma with the noun
compounds in front of it ("tennis racket", "stop sign"): a compound names the object
better than its head alone. A word of the COCO vocabulary takes its class name instead
("man" -> person, "couch" -> couch), so the rewrite check's person rules and a YOLO
detector still apply to it; the spacy backend finds multi-word COCO names ("teddy bear",
"hot dog") as it does for the ``coco`` vocabulary.
"""

from __future__ import annotations

OPEN_VOCABULARY = "open"
# The vocabulary whose words keep their class names under the open vocabulary.
CANONICAL_VOCABULARY = "coco"

SCENE_NOUNS = frozenset("""
kitchen bathroom bedroom room office restaurant cafe store shop market station airport runway terminal
street road highway freeway intersection crosswalk sidewalk alley lane city town village downtown
neighborhood neighbourhood park field yard backyard lawn garden farm pasture meadow beach shore coast ocean sea
lake river pond bay harbor harbour mountain mountainside hill hillside slope forest wood woods jungle desert
countryside area place location setting landscape scenery zoo stadium court arena parking outdoors indoors
home interior exterior environment enclosure space surroundings track tracks trail path stage platform
""".split())
# Surfaces that fill a picture's background: painted back by any inpainter.
SURFACE_NOUNS = frozenset("""
sky ground floor grass snow sand dirt mud water wave waves ice wall walls ceiling carpet rug pavement asphalt
concrete gravel
""".split())
RELATIONAL_NOUNS = frozenset("""
top front side back bottom middle center centre edge end corner left right rear inside outside surface part half
distance background foreground tip base
""".split())
COLLECTIVE_NOUNS = frozenset("""
group bunch couple pair lot lots number herd flock pack pile stack set row line variety assortment collection
crowd team kind type sort piece bit amount plenty dozen array display selection bundle batch series cluster
handful bouquet
""".split())
BODY_PARTS = frozenset("""
hand arm leg foot feet head face hair eye mouth nose ear finger lap shoulder neck knee tail paw body lip tooth
teeth tongue chest belly beard mustache moustache wing horn hoof mane fur skin trunk thumb toe wrist elbow
""".split())
GARMENTS = frozenset("""
shirt t-shirt tshirt jacket coat dress pants trousers jeans shorts suit uniform outfit sweater skirt costume
clothes clothing gear wetsuit vest hoodie sweatshirt attire apparel jersey blouse
""".split())
NOT_THINGS = frozenset("""
picture photo photograph image shot view scene close closeup way time day night morning afternoon evening
game match sport trick ride something thing things stuff object objects item items color colour shape style
word words reflection shadow weather position air one someone somebody anyone everyone everything nothing
sunset sunrise lighting daytime
""".split())
EXCLUDED = {
    "scene noun": SCENE_NOUNS,
    "background surface": SURFACE_NOUNS,
    "relational noun": RELATIONAL_NOUNS,
    "collective noun": COLLECTIVE_NOUNS,
    "body part": BODY_PARTS,
    "garment": GARMENTS,
    "not a visible thing": NOT_THINGS,
}
VERB_FORM_TAGS = {"VBG", "VBD", "VBN", "VBZ"}

# What the llm parse backend's prompt says a component is ($labels of its system message).
PROMPT_LINES = (
    "any concrete, removable object named by a noun (a pineapple, a plate, a sign, a tree, a building); its label is "
    "the noun's singular form (with the noun in front of it when it is a compound: \"tennis racket\"). Not places "
    "or scenes (kitchen, street, field, room, beach), background surfaces (sky, ground, grass, water, wall), parts "
    "or positions (top, front, side, edge), groups (group, bunch, pair), body parts (hand, head, hair), worn "
    "clothes (shirt, jacket) or nouns that name no visible thing (picture, view, time)."
)


def is_open(vocabulary) -> bool:
    """Whether a ``parse.vocabulary`` value selects the open vocabulary."""
    return isinstance(vocabulary, str) and vocabulary == OPEN_VOCABULARY


def exclusion(lemma: str) -> str | None:
    """Why a head lemma is never a component (the name of its word list), or None."""
    for reason, words in EXCLUDED.items():
        if lemma in words:
            return reason
    return None


class OpenVocabulary:
    """Labels of concrete, removable nouns read from spaCy tokens."""

    def __init__(self, canonical: dict[str, str] | None = None):
        """``canonical``: word -> class name of the words that keep a class name (default:
        the COCO vocabulary's classes and synonyms)."""
        if canonical is None:
            from dualclip.parse.vocabularies import resolve_vocabulary

            canonical = {word.lower(): label for label, words in resolve_vocabulary(CANONICAL_VOCABULARY).items()
                         for word in [label, *words]}
        self.canonical = canonical

    def why_not(self, token) -> str | None:
        """Why ``token``, the head of a noun phrase, is not a component, or None when it is one."""
        if token.pos_ != "NOUN":
            return f"{token.text!r} is not a common noun ({token.pos_.lower()})"
        if token.tag_ in VERB_FORM_TAGS:
            return f"{token.text!r} is a verb form"
        lemma = token.lemma_.lower()
        if not lemma.replace("-", "").isalpha() or len(lemma) < 2:
            return f"{token.text!r} is not a word"
        reason = exclusion(lemma) or exclusion(token.lower_)
        if reason and lemma not in self.canonical:
            return f"{token.text!r} is a {reason}"
        return None

    def label(self, token) -> str | None:
        """The detector label of a phrase headed by ``token``, or None when it is no component."""
        if self.why_not(token) is not None:
            return None
        lemma = token.lemma_.lower()
        if lemma in self.canonical:
            return self.canonical[lemma]
        if token.lower_ in self.canonical:
            return self.canonical[token.lower_]
        compounds = []
        left = token.i - 1
        while left >= 0 and token.doc[left].dep_ == "compound" and token.doc[left].pos_ == "NOUN" and token.doc[left].head.i == token.i:
            compounds.insert(0, token.doc[left].lower_)
            left -= 1
        return " ".join([*compounds, lemma])
