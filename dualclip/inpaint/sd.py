"""Stable Diffusion inpainting backend (diffusers ``StableDiffusionInpaintPipeline``).

The subset masks of consecutive images are packed into pipeline calls of ``batch_size``
(``inpaint_many``; ``inpaint`` is the one-image case), each with its own
``torch.Generator`` seeded with that subset's seed, so a subset's result does not depend
on which other subsets or images share its batch.

The model works at a fixed square resolution (``resolution``, default: the UNet's
sample size times the VAE scale factor, 512 for SD 1.5/2 inpainting). The image is
scaled so its long side fits, padded by repeating its border pixels (padding is never
masked, so the model keeps it), inpainted, cropped, scaled back -- and only the masked
pixels are taken from the result: every pixel outside a mask is the input pixel, bit
for bit, whatever the model and the resampling did there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from dualclip.registry import Settings


@dataclass(frozen=True, kw_only=True)
class SDSettings(Settings):
    model: str = "models/stable-diffusion-inpainting"  # local diffusers folder (save_pretrained layout)
    prompt: str = "empty background, natural continuation of the surrounding scene, high quality photo"
    negative_prompt: str = "object, person, animal, text, watermark, frame, blurry, distorted, artifacts"
    steps: int = 30
    guidance: float = 7.5
    strength: float = 1.0
    resolution: int | None = None  # None: the model's own (unet sample_size * vae scale factor)
    batch_size: int = 16  # subsets per pipeline call, packed across consecutive images
    dtype: str = "auto"  # float16 on CUDA, float32 on CPU
    scheduler: str | None = None  # e.g. DPMSolverMultistepScheduler to replace the model's scheduler
    safety_checker: bool = False  # True keeps the model's checker; flagged outputs then come back black
    device: str = "auto"


class StableDiffusionInpainter:
    name = "sd"

    def __init__(self, config: dict):
        import torch
        from diffusers import StableDiffusionInpaintPipeline

        from dualclip.llm import MIN_TOKENIZER_SIZE, model_source  # one tokenizer guard for every backend
        from dualclip.runtime import resolve_device

        self.settings = settings = SDSettings.from_config(config, "inpaint")
        self.device = str(resolve_device(settings.device))
        dtype = settings.dtype
        if dtype in (None, "", "auto"):
            # bf16/fp16 halve memory on a GPU; CPU kernels for fp16 are slow or missing.
            self.dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        else:
            self.dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
        model = str(settings.model)
        source = model_source(model)
        extra = {} if settings.safety_checker else {"safety_checker": None, "requires_safety_checker": False}
        try:
            self.pipe = StableDiffusionInpaintPipeline.from_pretrained(source, dtype=self.dtype, **extra)
        except (OSError, ValueError) as error:
            raise OSError(
                f"inpaint.model: cannot load the inpainting pipeline {model!r} ({error}); download it once "
                "(e.g. `hf download stable-diffusion-v1-5/stable-diffusion-inpainting --local-dir "
                "models/stable-diffusion-inpainting`) and set inpaint.model to that folder"
            ) from error
        if len(self.pipe.tokenizer) < MIN_TOKENIZER_SIZE:
            # An offline from_pretrained without tokenizer files silently builds a 2-token tokenizer.
            raise ValueError(
                f"inpaint.model {model!r}: its tokenizer has {len(self.pipe.tokenizer)} tokens, so tokenizer/vocab.json "
                "and merges.txt were not found; re-download the model folder"
            )
        if self.pipe.unet.config.in_channels != 9:
            raise ValueError(
                f"inpaint.model {model!r} has a {self.pipe.unet.config.in_channels}-channel UNet; use an inpainting "
                "checkpoint (9 input channels: latents, mask, masked-image latents)"
            )
        if settings.scheduler:
            import diffusers

            scheduler_class = getattr(diffusers, settings.scheduler, None)
            if scheduler_class is None:
                raise ValueError(f"inpaint.scheduler {settings.scheduler!r} is not a diffusers scheduler class")
            self.pipe.scheduler = scheduler_class.from_config(self.pipe.scheduler.config)
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        native = int(self.pipe.unet.config.sample_size) * int(self.pipe.vae_scale_factor)
        self.resolution = int(settings.resolution or native)
        if self.resolution % 8:
            raise ValueError(f"inpaint.resolution must be a multiple of 8, got {self.resolution}")
        self.batch_size = max(1, int(settings.batch_size))
        self.last_nsfw: list[bool] = []
        self._torch = torch

    # ------------------------------------------------------------------ geometry
    def _fit(self, height: int, width: int) -> tuple[int, int]:
        scale = self.resolution / max(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))

    def to_model(self, image: np.ndarray, masks: Sequence[np.ndarray]):
        """Image and masks scaled (long side = resolution) and padded to resolution^2."""
        import cv2  # here, not at the top: the workflow's pre-flight check reads SDSettings while it plans
        from PIL import Image

        height, width = image.shape[:2]
        new_h, new_w = self._fit(height, width)
        pad = ((0, self.resolution - new_h), (0, self.resolution - new_w))
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if new_h < height else cv2.INTER_CUBIC)
        padded = np.pad(resized, pad + ((0, 0),), mode="edge")
        model_masks = []
        for mask in masks:
            # Area-averaged then "> 0": a pixel partly covering the object is masked, so
            # scaling never uncovers an object's edge.
            small = cv2.resize(mask.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_AREA) > 0
            model_masks.append(Image.fromarray(np.pad(small, pad, constant_values=False).astype(np.uint8) * 255))
        return Image.fromarray(padded), model_masks, (new_h, new_w)

    def from_model(self, generated: np.ndarray, size: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
        import cv2

        new_h, new_w = size
        crop = np.clip(generated[:new_h, :new_w] * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return cv2.resize(crop, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)

    # ------------------------------------------------------------------ inpainting
    def inpaint(self, image: np.ndarray, masks: list[np.ndarray], seeds: list[int]) -> list[np.ndarray]:
        (outputs,) = self.inpaint_many([(image, masks, seeds)])
        return outputs

    def inpaint_many(self, items: Iterable[tuple[np.ndarray, list[np.ndarray], list[int]]]) -> Iterator[list[np.ndarray]]:
        """``inpaint`` of each ``(image, masks, seeds)`` item, yielded in item order.

        The subsets of consecutive images fill pipeline calls of ``batch_size``; an image's
        outputs are yielded as soon as its last subset has run, so a shard is never held
        whole. After each yield ``last_nsfw`` holds that image's safety-checker flags.
        """
        from dualclip.batching import packed_batches

        def cases():
            for image, masks, seeds in items:
                masks = self._checked_masks(image, masks, seeds)
                # An empty mask changes nothing; no need to spend a diffusion run on it.
                work = [index for index, mask in enumerate(masks) if mask.any()]
                if not work:
                    yield (image, masks, work, None), []
                    continue
                model_image, model_masks, size = self.to_model(image, [masks[index] for index in work])
                yield (image, masks, work, size), [
                    (model_image, model_mask, int(seeds[index])) for index, model_mask in zip(work, model_masks)
                ]

        for (image, masks, work, size), generated in packed_batches(cases(), self.batch_size, self._run_pipeline):
            outputs = [image.copy() for _ in masks]
            self.last_nsfw = [False] * len(masks)
            for index, (picture, flagged) in zip(work, generated):
                restored = self.from_model(picture, size, image.shape[:2])
                # Only the masked pixels come from the model.
                outputs[index] = np.where(masks[index][:, :, None], restored, image)
                self.last_nsfw[index] = flagged
            yield outputs

    @staticmethod
    def _checked_masks(image: np.ndarray, masks: list[np.ndarray], seeds: list[int]) -> list[np.ndarray]:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"inpaint: expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
        if len(masks) != len(seeds):
            raise ValueError(f"inpaint: {len(masks)} masks but {len(seeds)} seeds; give one seed per subset")
        for number, mask in enumerate(masks):
            if mask.shape != image.shape[:2]:
                raise ValueError(f"inpaint: mask {number} is {mask.shape}, image is {image.shape[:2]}")
        return [mask.astype(bool) for mask in masks]

    def _run_pipeline(self, work: list[tuple]) -> list[tuple[np.ndarray, bool]]:
        """One pipeline call on ``(model image, model mask, seed)`` items: (generated image, nsfw flag) each."""
        # to_model pads every image to resolution x resolution, so items of images of any
        # size share a call; each image keeps its own fitted size to crop back to.
        torch = self._torch
        # CPU generators give the same noise on any device (diffusers' advice for reproducibility).
        generators = [torch.Generator("cpu").manual_seed(seed) for _, _, seed in work]
        result = self.pipe(
            prompt=[self.settings.prompt] * len(work),
            negative_prompt=[self.settings.negative_prompt] * len(work),
            image=[model_image for model_image, _, _ in work],
            mask_image=[model_mask for _, model_mask, _ in work],
            height=self.resolution,
            width=self.resolution,
            num_inference_steps=int(self.settings.steps),
            guidance_scale=float(self.settings.guidance),
            strength=float(self.settings.strength),
            generator=generators,
            output_type="np",
        )
        nsfw = getattr(result, "nsfw_content_detected", None) or [False] * len(work)
        return [(generated, bool(flagged)) for generated, flagged in zip(result.images, nsfw)]
