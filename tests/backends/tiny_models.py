"""Tiny random-weight models built from their libraries' own classes, saved to a folder.

Shared by the backend tests (``tests/backends/conftest.py`` wraps them in fixtures) and the
COCO workflow test (``tests/test_coco_workflow.py``, which points a config at the saved
folders). Nothing comes from a hub: each model is built here and written with
``save_pretrained``/``save``, so it loads back the way a user's weights do
(``from_pretrained(dir)``, ``YOLO(path)``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# First classes of the tiny YOLO model of the backend tests (the rest are named class<i>).
YOLO_NAMES = ["person", "dog", "cat", "circle", "square"]


def offline_environment() -> None:
    """Before any ultralytics/transformers import: no hub calls, and ultralytics finds its
    font locally instead of downloading Arial.ttf."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if "YOLO_CONFIG_DIR" not in os.environ:
        yolo_dir = Path(tempfile.gettempdir()) / "dualclip-test-yolo-config"
        yolo_dir.mkdir(exist_ok=True)
        import matplotlib  # pinned: its DejaVuSans stands in for the Arial.ttf ultralytics would download

        font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        if not (yolo_dir / "Arial.ttf").exists():
            shutil.copyfile(font, yolo_dir / "Arial.ttf")
        os.environ["YOLO_CONFIG_DIR"] = str(yolo_dir)


def build_tiny_lm(folder: Path) -> Path:
    """A 1-layer Qwen2 causal LM with a byte-level BPE tokenizer trained here, saved in ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
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


def clip_byte_chars() -> list[str]:
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


def build_tiny_sd(folder: Path) -> Path:
    """A tiny StableDiffusionInpaintPipeline (9-channel UNet, 32 px) saved in ``folder/pipeline``."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    tokenizer_files = folder / "tokenizer-files"
    tokenizer_files.mkdir(parents=True)
    chars = clip_byte_chars()
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


def coco_class_names() -> list[str]:
    """The 80 COCO class names in YOLO order (ultralytics' own dataset file, no download)."""
    import ultralytics
    import yaml

    names = yaml.safe_load((Path(ultralytics.__file__).parent / "cfg" / "datasets" / "coco.yaml").read_text())["names"]
    return [names[index] for index in range(len(names))]


def build_tiny_yolo(path: Path, names: list[str] | None = None) -> Path:
    """yolov8n-seg built from its yaml (random weights) with named classes, saved as ``path`` (.pt).

    ``names``: the first class names (default ``YOLO_NAMES``; the rest are class<i>).
    """
    import torch
    from ultralytics import YOLO

    names = YOLO_NAMES if names is None else list(names)
    torch.manual_seed(0)  # the same random weights in every session: what they detect is then fixed
    model = YOLO("yolov8n-seg.yaml")
    model.model.names = {index: (names[index] if index < len(names) else f"class{index}") for index in range(len(model.model.names))}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def train_clip_tokenizer(folder: Path, corpus: list[str], model_max_length: int = 16):
    """A CLIP BPE tokenizer whose merges are trained here on ``corpus`` (byte-level, ``</w>``
    word ends, as CLIP's), written as vocab.json + merges.txt and loaded with CLIPTokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    backend = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    # CLIP splits on whitespace, then maps bytes to printable stand-ins
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), end_of_word_suffix="</w>")
    backend.train_from_iterator([line.lower() for line in corpus] * 5, trainer)
    merges = [" ".join(merge) if isinstance(merge, list) else merge for merge in json.loads(backend.to_str())["model"]["merges"]]
    chars = clip_byte_chars()
    vocab: dict[str, int] = {}
    for token in [*chars, *(char + "</w>" for char in chars), *("".join(merge.split()) for merge in merges)]:
        vocab.setdefault(token, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    # OWL pads its queries with "!" (id 0), as the released OWLv2 processors do
    tokenizer = CLIPTokenizer.from_pretrained(folder, model_max_length=model_max_length, pad_token="!")
    assert len(tokenizer) == len(vocab), "tokenizer files not read: from_pretrained built a default tokenizer"
    return tokenizer


def build_tiny_owlv2(folder: Path) -> Path:
    """A 2-layer Owlv2ForObjectDetection (64 px, patch 16: 16 boxes) with its processor, saved in ``folder``."""
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    folder = Path(folder)
    tokenizer = train_clip_tokenizer(folder / "tokenizer-files", [
        "a photo of a dog", "a photo of a cat", "a photo of a pineapple", "a plate on a table next to a sign",
        "a photo of a person", "a photo of a bench", "a photo of an object"])
    torch.manual_seed(0)
    config = Owlv2Config(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4,
                         num_hidden_layers=2, max_position_embeddings=16, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                           image_size=64, patch_size=16),
        projection_dim=32,
    )
    Owlv2ForObjectDetection(config).save_pretrained(folder)
    Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 64, "width": 64}), tokenizer=tokenizer).save_pretrained(folder)
    return folder


def build_tiny_sam(folder: Path) -> Path:
    """A 2-layer SamModel (64 px input, 8x8 image embedding) with its processor, saved in ``folder``."""
    import torch
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    folder = Path(folder)
    torch.manual_seed(0)
    config = SamConfig(
        vision_config=dict(hidden_size=32, output_channels=32, num_hidden_layers=2, num_attention_heads=2, image_size=64,
                           patch_size=8, window_size=4, global_attn_indexes=[1], num_pos_feats=16, mlp_dim=64),
        prompt_encoder_config=dict(hidden_size=32, image_size=64, patch_size=8, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=32),
    )
    SamModel(config).save_pretrained(folder)
    SamProcessor(SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
                                   mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16})).save_pretrained(folder)
    return folder
