"""The one embedding engine (dualclip.eval.embed): batching, order, normalisation, errors."""
import numpy as np
import pytest
import torch
from PIL import Image

from dualclip.eval.embed import embed_images, embed_texts, normalised_image_features


@pytest.fixture(scope="module")
def tiny():
    from dualclip.train.models import create_model

    torch.manual_seed(0)
    return create_model("dualclip-tiny", None)


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    files = []
    for k in range(7):
        path = folder / f"{k}.png"
        Image.fromarray(rng.integers(0, 256, (40 + 4 * k, 48, 3), dtype=np.uint8)).save(path)
        files.append(str(path))
    return files


def by_hand(model, preprocess, files):
    """What every call site computed before the engine: one stack, encode, .float(), normalise."""
    model.eval()
    with torch.no_grad():
        pixels = torch.stack([preprocess(Image.open(f).convert("RGB")) for f in files])
        return torch.nn.functional.normalize(model.encode_image(pixels).float(), dim=-1)


def test_embed_images_keeps_order_norm_and_bits_of_the_hand_loop(tiny, image_files):
    model, preprocess, _ = tiny
    features = embed_images(model, preprocess, image_files, "cpu", batch_size=3)
    assert features.shape[0] == len(image_files) and features.dtype == torch.float32 and features.device.type == "cpu"
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(len(image_files)))
    # batch by batch, the engine equals the hand loop to the bit
    expected = torch.cat([by_hand(model, preprocess, image_files[k:k + 3]) for k in range(0, len(image_files), 3)])
    assert torch.equal(features, expected)
    # the order is the input order: reversed input, reversed rows
    one_batch = embed_images(model, preprocess, image_files, "cpu", batch_size=len(image_files))
    reverse = embed_images(model, preprocess, image_files[::-1], "cpu", batch_size=len(image_files))
    torch.testing.assert_close(reverse, one_batch.flip(0), rtol=0, atol=1e-5)


def test_embed_images_takes_pil_images_and_workers(tiny, image_files):
    model, preprocess, _ = tiny
    from_files = embed_images(model, preprocess, image_files, "cpu", batch_size=4)
    pil = [Image.open(f).convert("RGB") for f in image_files]
    assert torch.equal(embed_images(model, preprocess, pil, "cpu", batch_size=4), from_files)
    assert torch.equal(embed_images(model, preprocess, image_files, "cpu", batch_size=4, workers=2), from_files)


def test_embed_images_loads_other_items_with_load_and_restores_training_mode(tiny, image_files):
    model, preprocess, _ = tiny
    items = [{"file": f} for f in image_files[:2]]
    model.train()
    features = embed_images(model, preprocess, items, "cpu", batch_size=2,
                            load=lambda item: Image.open(item["file"]).convert("RGB"))
    assert model.training
    model.eval()
    assert torch.equal(features, by_hand(model, preprocess, image_files[:2]))
    pixels = torch.stack([preprocess(Image.open(f).convert("RGB")) for f in image_files[:2]])
    with torch.no_grad():  # as every caller of the per-batch step (grad mode picks other attention kernels)
        assert torch.equal(normalised_image_features(model, pixels, "cpu"), features)


def test_embed_texts_batches_in_order(tiny):
    model, _, tokenizer = tiny
    texts = ["a red circle", "a blue square left of a red circle", "two green triangles", "a cat", "a dog"]
    features = embed_texts(model, tokenizer, texts, "cpu", batch_size=2)
    assert features.shape[0] == len(texts)
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(len(texts)))
    with torch.no_grad():
        expected = torch.cat([torch.nn.functional.normalize(model.encode_text(tokenizer(texts[k:k + 2])).float(), dim=-1)
                              for k in range(0, len(texts), 2)])
    assert torch.equal(features, expected)


def test_empty_inputs_give_empty_tensors(tiny):
    model, preprocess, tokenizer = tiny
    assert embed_images(model, preprocess, [], "cpu", 8).numel() == 0
    assert embed_texts(model, tokenizer, [], "cpu", 8).numel() == 0


def test_an_unreadable_image_names_the_file(tiny, tmp_path):
    model, preprocess, _ = tiny
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(OSError, match="broken.png.*download it again"):
        embed_images(model, preprocess, [str(broken)], "cpu", 4)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        embed_images(model, preprocess, [str(tmp_path / "missing.png")], "cpu", 4)
