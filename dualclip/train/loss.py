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

Graded targets (``ours_soft``): given each image's and text's (group, subset) — the
*lattice* of a sample's duals, subset as a bit mask of removed components — the target of
row I_S is spread over the texts T_S' of its own group with weight proportional to
exp(-lambda * |S Δ S'|) (0 outside the group and on masked columns), and likewise for
text rows. lambda -> infinity leaves only S' = S: the one-hot targets of ``ours``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def popcount(bits: torch.Tensor) -> torch.Tensor:
    """Set bits of each element of an integer tensor (|S Δ S'| of bit-mask subsets)."""
    count = torch.zeros_like(bits)
    while bool((bits != 0).any()):
        count += bits & 1
        bits = bits >> 1
    return count


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_j target_j log softmax_j; columns with target 0 (masked ones
    have -inf logits) contribute nothing, not 0 * -inf."""
    log_probs = F.log_softmax(logits, dim=1).masked_fill(targets == 0, 0.0)
    return -(targets * log_probs).sum(dim=1).mean()


class DualContrastiveLoss(nn.Module):
    def __init__(self, subset_lambda: float | None = None):
        """``subset_lambda``: the lambda of graded targets; batches that carry a lattice need it."""
        super().__init__()
        self.subset_lambda = subset_lambda

    def get_logits(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor):
        logits_per_image = logit_scale * image_features @ text_features.T
        return logits_per_image, logits_per_image.T

    @staticmethod
    def get_ground_truth(image_pos: torch.Tensor, text_pos: torch.Tensor):
        """Rows that take part in each direction, and their target column."""
        image_rows = torch.nonzero(image_pos >= 0).flatten()
        text_rows = torch.nonzero(text_pos >= 0).flatten()
        return image_rows, image_pos[image_rows], text_rows, text_pos[text_rows]

    def get_soft_targets(self, image_lattice: torch.Tensor, text_lattice: torch.Tensor) -> torch.Tensor:
        """Unnormalised target weights (n_images x n_texts) from each image's and text's
        (group, subset bits): exp(-lambda |S Δ S'|) within a group, 0 across groups."""
        if self.subset_lambda is None:
            raise ValueError("this batch carries subsets for graded targets (ours_soft): set train.ours_soft.lambda")
        same_group = image_lattice[:, 0, None] == text_lattice[None, :, 0]
        distance = popcount(image_lattice[:, 1, None] ^ text_lattice[None, :, 1])
        # the exact pair weighs 1 even for lambda = inf (exp(-inf * 0) would be NaN)
        weights = torch.where(distance == 0, 1.0, torch.exp(-float(self.subset_lambda) * distance.float()))
        return weights * same_group

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        image_pos: torch.Tensor,
        text_pos: torch.Tensor,
        i2t_mask: torch.Tensor | None = None,
        t2i_mask: torch.Tensor | None = None,
        image_lattice: torch.Tensor | None = None,
        text_lattice: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        logits_per_image, logits_per_text = self.get_logits(image_features, text_features, logit_scale)
        image_rows, image_targets, text_rows, text_targets = self.get_ground_truth(image_pos, text_pos)
        if image_lattice is not None:
            return self.graded_losses(logits_per_image, logits_per_text, image_rows, text_rows,
                                      self.get_soft_targets(image_lattice, text_lattice), i2t_mask, t2i_mask)
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

    @staticmethod
    def graded_losses(logits_per_image, logits_per_text, image_rows, text_rows, weights, i2t_mask, t2i_mask):
        """Both directions with the graded targets ``weights`` (images x texts), each row
        restricted to its allowed columns and normalised to sum to 1."""
        losses = {}
        for name, logits, rows, row_weights, mask in (
            ("loss_i2t", logits_per_image, image_rows, weights, i2t_mask),
            ("loss_t2i", logits_per_text, text_rows, weights.T, t2i_mask),
        ):
            if not len(rows):
                continue
            logits, targets = logits[rows], row_weights[rows]
            if mask is not None:
                logits = logits.masked_fill(~mask[rows], float("-inf"))
                targets = targets * mask[rows]
            losses[name] = soft_cross_entropy(logits, targets / targets.sum(dim=1, keepdim=True))
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
