"""Fixtures of the backend tests: tiny random-weight models built here, saved, loaded back.

Nothing comes from a hub: each model is built from its library's own classes, written
with ``save_pretrained``/``save`` to a temp folder and loaded the way a user's weights
are (``from_pretrained(dir)``, ``YOLO(path)``). Random weights make the outputs
meaningless, so the tests check structure (shapes, counts, determinism, pixels outside
masks) and drive the decision logic with constructed inputs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Before any ultralytics/transformers import: no hub calls, and ultralytics finds its
# font locally instead of downloading Arial.ttf.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
if "YOLO_CONFIG_DIR" not in os.environ:
    _yolo_dir = Path(tempfile.gettempdir()) / "dualclip-test-yolo-config"
    _yolo_dir.mkdir(exist_ok=True)
    try:
        import matplotlib

        _font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        if _font.is_file() and not (_yolo_dir / "Arial.ttf").exists():
            shutil.copyfile(_font, _yolo_dir / "Arial.ttf")
    except ImportError:
        pass
    os.environ["YOLO_CONFIG_DIR"] = str(_yolo_dir)

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# First classes of the tiny YOLO model (the rest are named class<i>).
YOLO_NAMES = ["person", "dog", "cat", "circle", "square"]


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """A 1-layer Qwen2 causal LM with a byte-level BPE tokenizer trained here."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    folder = tmp_path_factory.mktemp("tiny-lm")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = [
        "A man riding a brown horse next to two dogs.",
        '{"components": [{"text": "a dog", "head": "dog", "label": "dog"}]}',
        '{"text": "A red circle on a white table."}',
        "system user assistant caption remove keep",
    ]
    backend.train_from_iterator(corpus * 5, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHAT_TEMPLATE
    )
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
        # Large random weights: greedy answers then differ per prompt instead of all being
        # the same blank token, so the batching and determinism checks can fail.
        initializer_range=0.5,
    )
    Qwen2ForCausalLM(config).save_pretrained(folder)
    # Like a real instruct model: sampling by default. The wrapper must still be greedy.
    GenerationConfig(
        do_sample=True, temperature=0.7, top_p=0.8, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    ).save_pretrained(folder)
    return folder


def _clip_byte_chars() -> list[str]:
    """The 256 printable stand-ins of GPT-2/CLIP byte-level BPE, in their usual order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory) -> Path:
    """A tiny StableDiffusionInpaintPipeline (9-channel UNet) saved with save_pretrained."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny-sd")
    tokenizer_files = folder / "tokenizer-files"
    tokenizer_files.mkdir()
    chars = _clip_byte_chars()
    vocab: dict[str, int] = {}
    for char in chars:
        vocab[char] = len(vocab)
    for char in chars:
        vocab[char + "</w>"] = len(vocab)
    merges = ["t h", "th e</w>", "o b", "ob j</w>"]
    for merge in merges:
        vocab["".join(merge.split())] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (tokenizer_files / "vocab.json").write_text(json.dumps(vocab))
    (tokenizer_files / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_files, model_max_length=77)
    assert len(tokenizer) == len(vocab), "tokenizer files not read: from_pretrained built a default tokenizer"

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=9, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4, sample_size=32,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, projection_dim=32,
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    ))
    # steps_offset=1: what from_pretrained would otherwise rewrite (with a warning), so the
    # saved pipeline loads back with exactly this configuration.
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )
    pipe = StableDiffusionInpaintPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder / "pipeline")
    return folder / "pipeline"


@pytest.fixture(scope="session")
def tiny_yolo_path(tmp_path_factory) -> Path:
    """yolov8n-seg built from its yaml (random weights), with named classes, saved as .pt."""
    from ultralytics import YOLO

    model = YOLO("yolov8n-seg.yaml")
    model.model.names = {index: (YOLO_NAMES[index] if index < len(YOLO_NAMES) else f"class{index}") for index in range(len(model.model.names))}
    path = tmp_path_factory.mktemp("tiny-yolo") / "tiny-seg.pt"
    model.save(path)
    return path


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
