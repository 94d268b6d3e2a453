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


def test_graded_targets_of_a_two_component_group_by_hand():
    # one group: the original (S = {}) and its duals {0}, {1}, {0,1} as bit masks 0, 1, 2, 3;
    # features one-hot, so each image's logits are [scale at its own text, 0 elsewhere]
    lam, scale = 0.7, 2.0
    lattice = torch.tensor([[0, 0], [0, 1], [0, 2], [0, 3]])
    features = torch.eye(4)
    out = DualContrastiveLoss(subset_lambda=lam)(features, features, torch.tensor(scale), torch.arange(4), torch.arange(4),
                                                 image_lattice=lattice, text_lattice=lattice)
    # every row sees |S Δ S'| = 0, 1, 1, 2 (e.g. {} vs {0}, {1}, {0,1}): weights 1, e^-λ, e^-λ, e^-2λ
    z = 1 + 2 * math.exp(-lam) + math.exp(-2 * lam)
    log_normaliser = math.log(math.exp(scale) + 3)
    row = -(1 / z) * (scale - log_normaliser) - ((2 * math.exp(-lam) + math.exp(-2 * lam)) / z) * (-log_normaliser)
    assert out["loss_i2t"].item() == pytest.approx(row, abs=1e-6)
    assert out["loss_t2i"].item() == pytest.approx(row, abs=1e-6)


def test_graded_targets_stay_inside_a_group_and_are_asymmetric_where_the_logits_are():
    # two groups: sample A (original, dual {0}) and sample B (original only); random features
    torch.manual_seed(1)
    images = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    texts = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    lattice = torch.tensor([[0, 0], [0, 1], [1, 0]])
    lam, scale = 1.3, 4.0
    out = DualContrastiveLoss(subset_lambda=lam)(images, texts, torch.tensor(scale), torch.arange(3), torch.arange(3),
                                                 image_lattice=lattice, text_lattice=lattice)
    logits = (scale * images @ texts.T).tolist()
    weights = [[1, math.exp(-lam), 0], [math.exp(-lam), 1, 0], [0, 0, 1]]  # B's row and column: one-hot

    def soft_ce(row, target):
        log_normaliser = math.log(sum(math.exp(v) for v in row))
        return -sum(w / sum(target) * (v - log_normaliser) for v, w in zip(row, target))

    i2t = sum(soft_ce(logits[i], weights[i]) for i in range(3)) / 3
    columns = [[logits[i][t] for i in range(3)] for t in range(3)]
    t2i = sum(soft_ce(columns[t], [weights[i][t] for i in range(3)]) for t in range(3)) / 3
    assert out["loss_i2t"].item() == pytest.approx(i2t, abs=1e-5)
    assert out["loss_t2i"].item() == pytest.approx(t2i, abs=1e-5)


def test_a_large_lambda_gives_the_loss_of_ours():
    import numpy as np

    from dualclip.train.batches import Sample, TrainData, plan_epoch

    samples, files = [], []
    for i in range(5):
        sample = Sample(image=len(files), caption=f"scene {i}")
        files.append(f"{i}.png")
        for subset in ((0,), (1,), (0, 1))[: (0, 3, 1, 3, 2)[i]]:
            sample.duals.append((len(files), "an empty background" if len(subset) == 2 else f"scene {i} without {subset}"))
            sample.dual_subsets.append(subset)
            files.append(f"{i}-{subset}.png")
        samples.append(sample)
    data = TrainData(files, samples)
    soft = plan_epoch("ours_soft", data, 16, np.random.default_rng(0))[0]
    ours = plan_epoch("ours", data, 16, np.random.default_rng(0))[0]
    assert soft.images == ours.images and soft.texts == ours.texts and len(soft.images) == 14
    torch.manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(len(files), 8), dim=-1)[soft.images].requires_grad_()
    texts = torch.nn.functional.normalize(torch.randn(len(soft.texts), 8), dim=-1).requires_grad_()
    # "an empty background" is the dual text of two samples: masked as a duplicate caption
    i2t, t2i = duplicate_text_masks(soft.texts, soft.image_pos, soft.text_pos)
    assert not i2t.all()
    args = (images, texts, torch.tensor(10.0), torch.tensor(ours.image_pos), torch.tensor(ours.text_pos), i2t, t2i)
    hard = DualContrastiveLoss()(*args)
    lattice = {"image_lattice": torch.tensor(soft.image_lattice), "text_lattice": torch.tensor(soft.text_lattice)}
    graded = DualContrastiveLoss(subset_lambda=60.0)(*args, **lattice)
    for key in ("loss_i2t", "loss_t2i", "loss"):
        assert graded[key].item() == pytest.approx(hard[key].item(), abs=1e-6), key
    # lambda = inf (the schema allows it) is ours exactly, not NaN from exp(-inf * 0)
    infinite = DualContrastiveLoss(subset_lambda=float("inf"))(*args, **lattice)
    assert infinite["loss"].item() == pytest.approx(hard["loss"].item(), abs=1e-6)
    graded["loss"].backward()
    assert torch.isfinite(images.grad).all() and torch.isfinite(texts.grad).all()  # masked columns: no 0 * -inf
    # a small lambda is a different loss: the graded targets are not one-hot
    assert DualContrastiveLoss(subset_lambda=0.5)(*args, **lattice)["loss"].item() != pytest.approx(hard["loss"].item(), abs=1e-3)


def test_a_batch_with_subsets_needs_a_lambda():
    lattice = torch.tensor([[0, 0], [0, 1]])
    with pytest.raises(ValueError, match="train.ours_soft.lambda"):
        DualContrastiveLoss()(torch.eye(2), torch.eye(2), torch.tensor(1.0), torch.arange(2), torch.arange(2),
                              image_lattice=lattice, text_lattice=lattice)
