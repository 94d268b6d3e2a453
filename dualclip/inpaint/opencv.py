"""OpenCV inpainting (Telea or Navier-Stokes): fast, CPU-only, the embedded default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dualclip.registry import Settings

if TYPE_CHECKING:
    import numpy as np

# cv2's flag of each inpaint.method, by name: cv2 is imported when the inpainter is built, not
# when the workflow's pre-flight check reads OpenCVSettings while it plans
METHODS = {"telea": "INPAINT_TELEA", "ns": "INPAINT_NS"}


@dataclass(frozen=True, kw_only=True)
class OpenCVSettings(Settings):
    method: str = "telea"  # a key of METHODS
    radius: float = 3  # pixels around a masked pixel that fill it


class OpenCVInpainter:
    name = "opencv"

    def __init__(self, config: dict):
        import cv2

        settings = OpenCVSettings.from_config(config, "inpaint")
        if settings.method not in METHODS:
            raise ValueError(f"inpaint.method: unknown method {settings.method!r}; use one of {sorted(METHODS)}")
        self.flag = getattr(cv2, METHODS[settings.method])
        self.radius = float(settings.radius)

    def inpaint(self, image: np.ndarray, masks: list[np.ndarray], seeds: list[int]) -> list[np.ndarray]:
        import cv2
        import numpy as np

        outputs = []
        for mask in masks:
            filled = cv2.inpaint(np.ascontiguousarray(image), mask.astype(np.uint8), self.radius, self.flag)
            # cv2 leaves unmasked pixels untouched, but make that a guarantee, not a detail
            filled = np.where(mask[..., None], filled, image)
            outputs.append(filled.astype(np.uint8))
        return outputs
