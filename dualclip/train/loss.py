"""One contrastive loss for every method, shaped like open_clip's ``ClipLoss``.

A batch holds ``n_images`` images and ``n_texts`` texts. ``image_pos[i]`` is the index
of image i's positive text (-1: the image is only a negative, e.g. a dual image in
``ours_neg``); ``text_pos[t]`` the index of text t's positive image (-1: the text is only
a negative, e.g. a NegCLIP swap caption). Each direction is a cross-entropy over the
rows that have a positive, restricted to the allowed columns:

- image->text: row i over texts, the NegCLIP side where negative captions are extra columns;
- text->image: row t over images, the side where dual images are extra negative columns.

Columns that are not real negatives are masked out: texts identical to the row's
positive text (duplicate captions such as "a red circle" from two scenes), and any
pair the method's ``*_mask`` forbids. With one image and one text per sample and no
masking this is exactly CLIP's InfoNCE (checked against ``open_clip.ClipLoss`` in tests).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DualContrastiveLoss(nn.Module):
    def get_logits(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor):
        logits_per_image = logit_scale * image_features @ text_features.T
        return logits_per_image, logits_per_image.T

    @staticmethod
    def get_ground_truth(image_pos: torch.Tensor, text_pos: torch.Tensor):
        """Rows that take part in each direction, and their target column."""
        image_rows = torch.nonzero(image_pos >= 0).flatten()
        text_rows = torch.nonzero(text_pos >= 0).flatten()
        return image_rows, image_pos[image_rows], text_rows, text_pos[text_rows]

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        image_pos: torch.Tensor,
        text_pos: torch.Tensor,
        i2t_mask: torch.Tensor | None = None,
        t2i_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        logits_per_image, logits_per_text = self.get_logits(image_features, text_features, logit_scale)
        image_rows, image_targets, text_rows, text_targets = self.get_ground_truth(image_pos, text_pos)
        losses = {}
        if len(image_rows):
            logits = logits_per_image[image_rows]
            if i2t_mask is not None:
                logits = logits.masked_fill(~i2t_mask[image_rows], float("-inf"))
            losses["loss_i2t"] = F.cross_entropy(logits, image_targets)
        if len(text_rows):
            logits = logits_per_text[text_rows]
            if t2i_mask is not None:
                logits = logits.masked_fill(~t2i_mask[text_rows], float("-inf"))
            losses["loss_t2i"] = F.cross_entropy(logits, text_targets)
        losses["loss"] = sum(losses.values()) / len(losses)
        return losses


def duplicate_text_masks(texts: list[str], image_pos: list[int], text_pos: list[int]):
    """Masks that drop false negatives: columns whose text equals the row's positive text.

    i2t: for image i, a text column j != pos(i) with texts[j] == texts[pos(i)] is masked.
    t2i: for text t, an image column k != pos(t) whose own positive text equals texts[t]
    is masked (that image is described by exactly this caption too).
    """
    ids: dict[str, int] = {}
    text_ids = torch.tensor([ids.setdefault(text, len(ids)) for text in texts])
    image_pos_t = torch.tensor(image_pos)
    image_text_ids = torch.where(image_pos_t >= 0, text_ids[image_pos_t.clamp(min=0)], torch.tensor(-1))
    n_images, n_texts = len(image_pos), len(texts)
    i2t = torch.ones(n_images, n_texts, dtype=torch.bool)
    same = image_text_ids[:, None] == text_ids[None, :]
    i2t &= ~same
    rows = torch.nonzero(image_pos_t >= 0).flatten()
    i2t[rows, image_pos_t[rows]] = True
    t2i = torch.ones(n_texts, n_images, dtype=torch.bool)
    t2i &= ~(text_ids[:, None] == image_text_ids[None, :])
    text_pos_t = torch.tensor(text_pos)
    rows = torch.nonzero(text_pos_t >= 0).flatten()
    t2i[rows, text_pos_t[rows]] = True
    return i2t, t2i
