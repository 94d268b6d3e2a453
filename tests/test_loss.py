"""The contrastive loss of every method against hand-computed values."""

import math

import open_clip
import pytest
import torch

from dualclip.train.loss import DualContrastiveLoss, duplicate_text_masks


def ce(logits_row, target):
    return -logits_row[target] + math.log(sum(math.exp(v) for v in logits_row))


def test_two_pair_clip_loss_by_hand():
    # 2 images, 2 texts, unit features chosen so the similarities are simple numbers
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    scale = torch.tensor(2.0)
    out = DualContrastiveLoss()(images, texts, scale, torch.tensor([0, 1]), torch.tensor([0, 1]))
    sims = [[2.0, 1.2], [0.0, 1.6]]  # scale * image @ text
    i2t = (ce(sims[0], 0) + ce(sims[1], 1)) / 2
    t2i = (ce([sims[0][0], sims[1][0]], 0) + ce([sims[0][1], sims[1][1]], 1)) / 2
    assert out["loss_i2t"].item() == pytest.approx(i2t, abs=1e-6)
    assert out["loss_t2i"].item() == pytest.approx(t2i, abs=1e-6)
    assert out["loss"].item() == pytest.approx((i2t + t2i) / 2, abs=1e-6)


def test_standard_batch_equals_open_clip_clip_loss():
    torch.manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    texts = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    scale = torch.tensor(10.0)
    ours = DualContrastiveLoss()(images, texts, scale, torch.arange(5), torch.arange(5))["loss"]
    reference = open_clip.ClipLoss()(images, texts, scale)
    assert ours.item() == pytest.approx(reference.item(), abs=1e-6)


def test_negclip_negative_captions_are_image_to_text_columns_only():
    # 2 images, texts = 2 captions + 1 swap negative (text_pos -1): NegCLIP's loss
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    scale = torch.tensor(1.0)
    out = DualContrastiveLoss()(images, texts, scale, torch.tensor([0, 1]), torch.tensor([0, 1, -1]))
    sims = [[1.0, 0.0, 0.8], [0.0, 1.0, 0.6]]
    i2t = (ce(sims[0], 0) + ce(sims[1], 1)) / 2
    t2i = (ce([1.0, 0.0], 0) + ce([0.0, 1.0], 1)) / 2  # the negative text is never a row
    assert out["loss_i2t"].item() == pytest.approx(i2t, abs=1e-6)
    assert out["loss_t2i"].item() == pytest.approx(t2i, abs=1e-6)


def test_ours_neg_dual_image_is_text_to_image_column_only():
    # images = original + its dual (image_pos -1); texts = the caption only
    images = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    texts = torch.tensor([[1.0, 0.0]])
    scale = torch.tensor(3.0)
    out = DualContrastiveLoss()(images, texts, scale, torch.tensor([0, -1]), torch.tensor([0]))
    assert out["loss_i2t"].item() == pytest.approx(0.0, abs=1e-6)  # one column: log-softmax of one = 0
    assert out["loss_t2i"].item() == pytest.approx(ce([3.0, 1.8], 0), abs=1e-6)


def test_duplicate_captions_are_not_negatives():
    texts = ["a red circle", "a red circle", "a blue square"]
    i2t, t2i = duplicate_text_masks(texts, [0, 1, 2], [0, 1, 2])
    assert i2t.tolist() == [[True, False, True], [False, True, True], [True, True, True]]
    assert t2i.tolist() == [[True, False, True], [False, True, True], [True, True, True]]
    # masked: the loss of two identical pairs equals the loss of each alone with the third
    images = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [1.0, -0.1], [0.0, 1.0]]), dim=-1)
    features = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=-1)
    out = DualContrastiveLoss()(images, features, torch.tensor(5.0), torch.arange(3), torch.arange(3), i2t, t2i)
    unmasked = DualContrastiveLoss()(images, features, torch.tensor(5.0), torch.arange(3), torch.arange(3))
    assert out["loss"] < unmasked["loss"]
    assert torch.isfinite(out["loss"])
