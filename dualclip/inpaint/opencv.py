"""OpenCV inpainting (Telea or Navier-Stokes): fast, CPU-only, the embedded default."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dualclip.registry import Settings

METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


@dataclass(frozen=True, kw_only=True)
class OpenCVSettings(Settings):
    method: str = "telea"  # a key of METHODS
    radius: float = 3  # pixels around a masked pixel that fill it


class OpenCVInpainter:
    name = "opencv"

    def __init__(self, config: dict):
        settings = OpenCVSettings.from_config(config, "inpaint")
        if settings.method not in METHODS:
            raise ValueError(f"inpaint.method: unknown method {settings.method!r}; use one of {sorted(METHODS)}")
        self.flag = METHODS[settings.method]
        self.radius = float(settings.radius)

    def inpaint(self, image: np.ndarray, masks: list[np.ndarray], seeds: list[int]) -> list[np.ndarray]:
        outputs = []
        for mask in masks:
            filled = cv2.inpaint(np.ascontiguousarray(image), mask.astype(np.uint8), self.radius, self.flag)
            # cv2 leaves unmasked pixels untouched, but make that a guarantee, not a detail
            filled = np.where(mask[..., None], filled, image)
            outputs.append(filled.astype(np.uint8))
        return outputs
