"""Shared chat language model wrapper for the ``llm`` parse and rewrite backends.

Three parts, usable separately:

* ``PromptTemplate`` / ``load_prompt`` -- a few-shot prompt file (``config/prompts/*.txt``)
  turned into a chat conversation;
* ``ChatLM`` -- a transformers ``AutoModelForCausalLM`` + ``AutoTokenizer`` loaded from a
  local folder (or a cached hub id), rendering conversations with the tokenizer's chat
  template and generating greedily in batches, so the same inputs always give the same
  outputs;
* ``extract_json`` and ``generate_validated`` -- pull the JSON answer out of free text and
  run one validated round of generation plus one retry that shows the model its own
  answer and what was wrong with it (greedy decoding would repeat an unchanged prompt).

Anything with a ``generate(conversations) -> list[str]`` method can stand in for
``ChatLM`` (the backends accept one), which is how the validation logic is tested with
scripted answers.

Prompt file format (plain text, UTF-8)::

    # comment lines before the first section are ignored
    ### system
    instructions ...
    ### user
    example question
    ### assistant
    example answer (JSON)
    ... more user/assistant pairs ...
    ### query
    the real question, with $placeholders filled by the backend
    ### retry
    what to say after an invalid answer; $problems lists what was wrong

``system``, ``retry`` and the examples are optional, ``query`` is required. Placeholders
use ``string.Template`` syntax (``$caption``, ``${labels}``) so JSON braces in examples
need no escaping; a literal dollar sign is ``$$``.
"""

from __future__ import annotations

import json
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from dualclip.registry import Settings
from dualclip.runtime import resolve_device

Conversation = list[dict[str, str]]

# A real chat tokenizer has tens of thousands of tokens. Far fewer means the tokenizer
# files were not found and a default one was built (offline from_pretrained of a hub id
# can do this silently) -- generation would then be garbage rather than fail.
MIN_TOKENIZER_SIZE = 100

DEFAULT_RETRY = (
    "That answer is not valid: $problems. Reply again with only the corrected JSON, "
    "following the instructions and the examples."
)

_SECTION = re.compile(r"^###[ \t]*(system|user|assistant|query|retry)[ \t]*$", re.MULTILINE)
_REPO_ROOT = Path(__file__).resolve().parents[1]


class ChatGenerator(Protocol):
    def generate(self, conversations: Sequence[Conversation]) -> list[str]: ...


# --------------------------------------------------------------------------- prompts


@dataclass
class PromptTemplate:
    query: str
    system: str | None = None
    examples: list[tuple[str, str]] = field(default_factory=list)  # (user, assistant)
    retry: str = DEFAULT_RETRY
    source: str = "<string>"

    @classmethod
    def parse(cls, text: str, source: str = "<string>") -> "PromptTemplate":
        matches = list(_SECTION.finditer(text))
        if not matches:
            raise ValueError(
                f"prompt {source}: no '### query' section; a prompt file needs lines "
                "'### system', '### user', '### assistant', '### query' starting its sections"
            )
        sections: list[tuple[str, str]] = []
        for number, match in enumerate(matches):
            end = matches[number + 1].start() if number + 1 < len(matches) else len(text)
            sections.append((match.group(1), text[match.end():end].strip("\n").strip()))
        system = retry = query = None
        examples: list[tuple[str, str]] = []
        pending_user: str | None = None
        for name, body in sections:
            if name == "system":
                if system is not None or examples or pending_user is not None:
                    raise ValueError(f"prompt {source}: '### system' must come once, before the examples")
                system = body
            elif name == "user":
                if pending_user is not None:
                    raise ValueError(f"prompt {source}: two '### user' sections in a row; add the '### assistant' answer")
                pending_user = body
            elif name == "assistant":
                if pending_user is None:
                    raise ValueError(f"prompt {source}: '### assistant' without a '### user' section before it")
                examples.append((pending_user, body))
                pending_user = None
            elif name == "query":
                if query is not None:
                    raise ValueError(f"prompt {source}: more than one '### query' section")
                query = body
            else:
                retry = body
        if pending_user is not None:
            raise ValueError(f"prompt {source}: the last '### user' example has no '### assistant' answer")
        if not query:
            raise ValueError(f"prompt {source}: the '### query' section is missing or empty")
        return cls(query=query, system=system or None, examples=examples, retry=retry or DEFAULT_RETRY, source=source)

    def conversation(self, **values: Any) -> Conversation:
        """System message, the few-shot examples as earlier turns, then the filled query."""
        messages: Conversation = []
        if self.system:
            messages.append({"role": "system", "content": self._fill(self.system, values, strict=False)})
        for user, assistant in self.examples:
            messages.append({"role": "user", "content": user})
            messages.append({"role": "assistant", "content": assistant})
        messages.append({"role": "user", "content": self._fill(self.query, values, strict=True)})
        return messages

    def retry_turns(self, answer: str, problems: Sequence[str]) -> Conversation:
        """The two turns appended for a retry: the model's answer and the complaint."""
        complaint = self._fill(self.retry, {"problems": "; ".join(problems)}, strict=False)
        return [{"role": "assistant", "content": answer}, {"role": "user", "content": complaint}]

    def _fill(self, text: str, values: dict, strict: bool) -> str:
        template = string.Template(text)
        if not strict:
            return template.safe_substitute(values)
        try:
            return template.substitute(values)
        except KeyError as error:
            raise ValueError(
                f"prompt {self.source}: placeholder ${error.args[0]} in '### query' is not one the backend "
                f"fills ({', '.join(sorted(values))}); remove it or write $$ for a literal dollar"
            ) from None
        except ValueError as error:
            raise ValueError(f"prompt {self.source}: bad placeholder in '### query': {error}") from None


def resolve_path(path: str | os.PathLike) -> Path:
    """A config path as given (relative to the working directory), else relative to the repo root.

    Snakemake runs from the repo root, but tests and notebooks may not.
    """
    candidate = Path(path)
    if candidate.exists() or candidate.is_absolute():
        return candidate
    return _REPO_ROOT / candidate


def model_source(model: str | os.PathLike) -> str:
    """What ``from_pretrained`` gets: the local folder (see :func:`resolve_path`) when there
    is one, else the value as given (a hub id)."""
    local = resolve_path(model)
    return str(local) if local.exists() else str(model)


def load_prompt(path: str | os.PathLike) -> PromptTemplate:
    resolved = resolve_path(path)
    if not resolved.is_file():
        raise FileNotFoundError(f"prompt file {path} not found (looked at {resolved}); set the stage's 'prompt' key")
    return PromptTemplate.parse(resolved.read_text(encoding="utf-8"), source=str(path))


# --------------------------------------------------------------------------- JSON


class JSONExtractionError(ValueError):
    pass


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """The first JSON object or array in a model's answer.

    Chat models wrap JSON in code fences or add a sentence around it; the answer is
    accepted when exactly such a JSON value can be found, trailing text ignored.
    """
    if not text or not text.strip():
        raise JSONExtractionError("empty answer, expected JSON")
    candidates = [match.group(1) for match in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        stripped = candidate.strip()
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            pass
        for position, char in enumerate(stripped):
            if char in "{[":
                try:
                    value, _ = decoder.raw_decode(stripped, position)
                    return value
                except json.JSONDecodeError:
                    continue
    raise JSONExtractionError(f"no JSON object found in the answer {_preview(text)}")


def _preview(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --------------------------------------------------------------------------- validated generation


@dataclass
class Validated:
    """Outcome of generating one answer: the parsed value, or the problems of the last try."""

    value: Any = None
    problems: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)  # raw model answers, one per try
    retried: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def generate_validated(
    lm: ChatGenerator,
    conversations: Sequence[Conversation],
    validate: Callable[[int, str], tuple[Any, list[str]]],
    prompt: PromptTemplate,
    retries: int = 1,
) -> list[Validated]:
    """Generate an answer per conversation; re-ask the invalid ones up to ``retries`` times.

    ``validate(i, answer)`` returns ``(value, problems)``; an empty ``problems`` accepts the
    value. All first tries go in one batched call, then the failures of each round in one.
    """
    results = [Validated() for _ in conversations]
    current = [list(conversation) for conversation in conversations]
    pending = list(range(len(conversations)))
    for attempt in range(retries + 1):
        if not pending:
            break
        answers = lm.generate([current[i] for i in pending])
        if len(answers) != len(pending):
            raise RuntimeError(f"generator returned {len(answers)} answers for {len(pending)} prompts")
        still = []
        for i, answer in zip(pending, answers):
            result = results[i]
            result.answers.append(answer)
            result.retried = attempt > 0
            try:
                value, problems = validate(i, answer)
            except JSONExtractionError as error:
                value, problems = None, [str(error)]
            result.value, result.problems = (value, []) if not problems else (None, list(problems))
            if problems:
                current[i] = current[i] + prompt.retry_turns(answer, problems)
                still.append(i)
        pending = still
    return results


# --------------------------------------------------------------------------- the model


def resolve_dtype(dtype: str | None, device: str):
    """'auto': bfloat16 on a GPU that supports it, else float16 on CUDA, float32 on CPU."""
    import torch

    if dtype in (None, "", "auto"):
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    try:
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    except KeyError:
        raise ValueError(f"dtype {dtype!r} unknown; use auto, float32, float16 or bfloat16") from None


@dataclass(frozen=True, kw_only=True)
class LLMSettings(Settings):
    """The keys of a chat LM (the llm backends of parse and rewrite): ``ChatLM``'s arguments."""

    model: str = ""  # a local folder or a hub id in the local cache (ChatLM refuses an empty one)
    device: str = "auto"
    dtype: str = "auto"  # bfloat16/float16 on CUDA, float32 on CPU
    max_new_tokens: int = 256
    batch_size: int = 8  # prompts per generate() call
    chat_template: str | None = None  # a Jinja file replacing the tokenizer's template


class ChatLM:
    """A causal chat LM generating greedily (deterministic) in batches.

    ``model`` is a local folder with weights, config, tokenizer files and a chat template
    (or a hub id already in the local cache -- nothing is downloaded when offline).
    """

    def __init__(
        self,
        model: str,
        device: str = LLMSettings.device,
        dtype: str = LLMSettings.dtype,
        max_new_tokens: int = LLMSettings.max_new_tokens,
        batch_size: int = LLMSettings.batch_size,
        chat_template: str | None = LLMSettings.chat_template,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not model:
            raise ValueError("LLM 'model' is empty; set it to a local model folder (e.g. models/Qwen2.5-1.5B-Instruct)")
        self.model_name = str(model)
        self.device = str(resolve_device(device))
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = max(1, int(batch_size))
        source = model_source(model)
        try:
            # Left padding: generation appends after the last prompt token of every row.
            self.tokenizer = AutoTokenizer.from_pretrained(source, padding_side="left")
            if len(self.tokenizer) < MIN_TOKENIZER_SIZE:
                raise ValueError(
                    f"tokenizer of LLM {model!r} has only {len(self.tokenizer)} tokens: its tokenizer files were not "
                    "found; point 'model' at a folder holding tokenizer.json (or vocab + merges files)"
                )
            self.model = AutoModelForCausalLM.from_pretrained(source, dtype=resolve_dtype(dtype, self.device))
        except OSError as error:
            raise OSError(
                f"cannot load LLM {model!r}: {error}\nDownload the model once (e.g. `hf download ID --local-dir "
                f"models/NAME`) and set parse.model (parse stage) or rewrite.model (rewrite stage) to that folder."
            ) from error
        if chat_template:
            self.tokenizer.chat_template = resolve_path(chat_template).read_text(encoding="utf-8")
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"LLM {model!r} has no chat template; use an instruction-tuned model or set 'chat_template' "
                "to a Jinja template file"
            )
        if self.tokenizer.pad_token_id is None:
            # Batched generation needs a pad id; the pad positions are masked out anyway.
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self._eos_ids = sorted(eos_ids)
        self._torch = torch
        # model.generate() calls so far (one call per batch of batch_size rows):
        # the rewrite stage records the calls of each shard
        self.generate_calls = 0

    @classmethod
    def from_config(cls, config: dict) -> "ChatLM":
        """The LM of an llm backend's config section (its other keys are the backend's)."""
        settings = LLMSettings.from_config(config, "llm")
        return cls(**{name: getattr(settings, name) for name in LLMSettings.config_keys()})

    def render(self, conversation: Conversation) -> str:
        return self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)

    def generate(self, conversations: Sequence[Conversation]) -> list[str]:
        torch = self._torch
        answers: list[str] = []
        for start in range(0, len(conversations), self.batch_size):
            texts = [self.render(conversation) for conversation in conversations[start:start + self.batch_size]]
            # The chat template already wrote the special tokens (BOS included where the model has one).
            encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            encoded = {key: value.to(self.device) for key, value in encoded.items()}
            self.generate_calls += 1
            with torch.inference_mode():
                output = self.model.generate(
                    **encoded,
                    do_sample=False,
                    num_beams=1,
                    max_new_tokens=self.max_new_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=self._eos_ids,
                )
            prompt_length = encoded["input_ids"].shape[1]
            for row in output:
                answers.append(self.tokenizer.decode(row[prompt_length:], skip_special_tokens=True).strip())
        return answers
