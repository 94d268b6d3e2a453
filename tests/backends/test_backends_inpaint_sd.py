"""Stable Diffusion inpainting backend on a tiny random-weight pipeline loaded from disk."""

from __future__ import annotations

import numpy as np
import pytest

from dualclip.inpaint import nonempty_subsets
from dualclip.inpaint.sd import StableDiffusionInpainter


@pytest.fixture(scope="module")
def inpainter(tiny_sd_dir):
    return StableDiffusionInpainter({"model": str(tiny_sd_dir), "steps": 2, "guidance": 7.5, "device": "cpu"})


def subset_masks(component_masks):
    subsets = nonempty_subsets(list(range(len(component_masks))))
    unions = []
    for subset in subsets:
        union = np.zeros_like(component_masks[0])
        for index in subset:
            union |= component_masks[index]
        unions.append(union)
    return subsets, unions


def test_pipeline_round_trips_through_save_and_load(inpainter, tiny_sd_dir):
    from diffusers import DDIMScheduler

    pipe = inpainter.pipe
    assert pipe.scheduler.config.steps_offset == 1
    saved = DDIMScheduler.from_pretrained(tiny_sd_dir, subfolder="scheduler")
    assert dict(pipe.scheduler.config) == dict(saved.config)
    assert len(pipe.tokenizer) == 518  # 512 byte symbols + 4 merges + 2 specials, read from the files
    assert pipe.unet.config.in_channels == 9
    assert inpainter.resolution == 32  # sample_size 16 x vae scale factor 2


def test_power_set_outputs_keep_unmasked_pixels(inpainter):
    height, width = 40, 56  # not square, not the model's 32: exercises resize, pad and crop
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    components = [np.zeros((height, width), bool) for _ in range(3)]
    components[0][2:14, 3:20] = True
    components[1][20:38, 30:54] = True
    components[2][10:30, 15:35] = True  # overlaps both others
    subsets, masks = subset_masks(components)
    seeds = [100 + number for number in range(len(masks))]
    outputs = inpainter.inpaint(image, masks, seeds)

    assert len(outputs) == 2 ** 3 - 1 == len(subsets)
    for mask, output in zip(masks, outputs):
        assert output.shape == image.shape and output.dtype == np.uint8
        np.testing.assert_array_equal(output[~mask], image[~mask])  # bit-identical outside
        assert (output[mask] != image[mask]).mean() > 0.5  # the model did paint inside
    assert inpainter.last_nsfw == [False] * len(masks)

    # Same seeds, same images; a subset's result does not depend on its batch companions.
    again = inpainter.inpaint(image, masks[:1], seeds[:1])
    assert np.abs(again[0].astype(int) - outputs[0].astype(int)).max() <= 2
    np.testing.assert_array_equal(inpainter.inpaint(image, masks, seeds)[3], outputs[3])
    other = inpainter.inpaint(image, masks[:1], [999])
    assert np.abs(other[0].astype(int) - outputs[0].astype(int)).max() > 10


def test_empty_mask_and_bad_input(inpainter):
    image = np.full((24, 24, 3), 7, np.uint8)
    empty = np.zeros((24, 24), bool)
    assert np.array_equal(inpainter.inpaint(image, [empty], [0])[0], image)
    with pytest.raises(ValueError, match="one seed per subset"):
        inpainter.inpaint(image, [empty], [])
    with pytest.raises(ValueError, match="mask 0 is"):
        inpainter.inpaint(image, [np.zeros((5, 5), bool)], [0])


def test_missing_model_folder_names_the_fix(tmp_path):
    with pytest.raises(OSError, match="inpaint.model"):
        StableDiffusionInpainter({"model": str(tmp_path / "absent"), "device": "cpu"})
