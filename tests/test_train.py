"""Batch plans of every method, matched compute, resume, and the paper-scale model."""

import numpy as np
import pytest
import torch

from dualclip.download.shapes import WorldConfig, world_record
from dualclip.io import write_png
from dualclip.train.batches import METHODS, Sample, TrainData, build_train_data, nearest_neighbours, plan_epoch
from dualclip.train.trainer import count_steps, train


def toy_data(n=12, duals_per=3):
    samples, files = [], []
    for i in range(n):
        sample = Sample(image=len(files), caption=f"caption {i}", negatives=[f"negative {i}"])
        files.append(f"img{i}")
        for d in range(duals_per if i % 3 else 0):  # every third sample has no dual
            sample.duals.append((len(files), f"dual {i}.{d}"))
            files.append(f"img{i}.{d}")
        samples.append(sample)
    return TrainData(files, samples)


@pytest.mark.parametrize("method", METHODS)
def test_every_batch_respects_the_image_budget_and_pairs(method):
    data = toy_data()
    neighbours = nearest_neighbours(np.random.default_rng(0).normal(size=(12, 4)), 3)
    plan = plan_epoch(method, data, 8, np.random.default_rng(0), neighbours)
    for batch in plan:
        assert len(batch.images) <= 8
        assert len(batch.image_pos) == len(batch.images) and len(batch.text_pos) == len(batch.texts)
        for i, t in enumerate(batch.image_pos):
            if t >= 0:
                assert batch.text_pos[t] == i  # positives are mutual


def test_ours_keeps_a_sample_and_its_duals_in_one_batch():
    data = toy_data()
    for batch in plan_epoch("ours", data, 8, np.random.default_rng(1)):
        texts = set(batch.texts)
        for sample in data.samples:
            if sample.caption in texts:
                assert all(text in texts for _, text in sample.duals)


def test_ours_shuf_is_the_same_stream_as_ours_but_split_up():
    data = toy_data()
    ours = [t for b in plan_epoch("ours", data, 8, np.random.default_rng(1)) for t in b.texts]
    shuf_plan = plan_epoch("ours_shuf", data, 8, np.random.default_rng(1))
    shuf = [t for b in shuf_plan for t in b.texts]
    assert sorted(ours) == sorted(shuf)
    together = sum(all(t in b.texts for _, t in s.duals) and s.caption in b.texts
                   for b in shuf_plan for s in data.samples if s.duals)
    assert together < sum(1 for s in data.samples if s.duals)


def test_negclip_adds_neighbour_images_and_negative_text_columns():
    data = toy_data(duals_per=0)
    neighbours = nearest_neighbours(np.random.default_rng(0).normal(size=(12, 4)), 3)
    batch = plan_epoch("negclip", data, 8, np.random.default_rng(0), neighbours)[0]
    assert len(batch.images) == 8  # 4 samples + 4 neighbour images
    assert sum(p == -1 for p in batch.text_pos) == 8  # a swap negative for each sample and neighbour
    assert all(t.startswith("negative") for t, p in zip(batch.texts, batch.text_pos) if p == -1)


def test_ours_neg_and_ours_pos_roles():
    data = toy_data()
    neg = plan_epoch("ours_neg", data, 8, np.random.default_rng(0))[0]
    assert -1 in neg.image_pos and not any(t.startswith("dual") for t in neg.texts)
    pos = plan_epoch("ours_pos", data, 8, np.random.default_rng(0))
    assert any(b.unmasked_pairs_off for b in pos)


def test_nearest_neighbours_excludes_self():
    embeddings = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    assert nearest_neighbours(embeddings, 1).ravel().tolist() == [1, 0, 3, 2]


def test_failed_rewrites_are_left_out_and_counted():
    records = [{"image": "a.png", "caption": "c", "duals": [
        {"file": "d1.png", "text": "ok", "check_ok": True},
        {"file": "d2.png", "text": "bad", "check_ok": False},
        {"file": "d3.png", "text": "rej", "check_ok": True, "accepted": False}]}]
    data = build_train_data(records)
    assert [t for _, t in data.samples[0].duals] == ["ok"]
    assert data.n_duals_rejected == 2


def test_equal_compute_gives_every_method_the_same_image_budget():
    from dualclip.train.trainer import iterate_plan

    data = toy_data()
    config = {"batch_images": 8, "compute": "equal_compute", "budget_images": 200, "epochs": 1}
    neighbours = nearest_neighbours(np.random.default_rng(0).normal(size=(12, 4)), 3)
    for method in METHODS:
        total, per_epoch = count_steps(method, data, config, 0, neighbours)
        seen = 0
        for step, _, batch in iterate_plan(method, data, 8, 0, neighbours, 0):
            if step >= total:
                break
            seen += len(batch.images)
        assert abs(seen - 200) <= 8, (method, seen)  # within one batch of the budget
    assert count_steps("ours", data, config, 0, neighbours)[1] > count_steps("baseline", data, config, 0, neighbours)[1]


def world_train_data(folder, seed: int, n: int = 16, make_duals=None):
    """``n`` synthetic scenes written to ``folder`` as training records, each with its
    reversed caption as a negative; ``make_duals(image, caption)`` -> [(image, text)] adds duals."""
    world = WorldConfig(seed=seed)
    records = []
    for index in range(n):
        image, _, record = world_record(world, "train", index)
        write_png(folder / f"{index}.png", image)
        duals = []
        for k, (dual_image, text) in enumerate(make_duals(image, record["caption"]) if make_duals else []):
            write_png(folder / f"{index}-dual{k}.png", dual_image)
            duals.append({"file": str(folder / f"{index}-dual{k}.png"), "text": text})
        records.append({"image": str(folder / f"{index}.png"), "caption": record["caption"],
                        "negatives": [record["caption"][::-1]], "duals": duals})
    return build_train_data(records)


@pytest.fixture(scope="module")
def world_data(tmp_path_factory):
    return world_train_data(tmp_path_factory.mktemp("world"), seed=3)


def tiny_config(steps, batch_images=8):
    return {"model": {"name": "dualclip-tiny", "pretrained": None}, "device": "cpu",
            "train": {"batch_images": batch_images, "compute": "equal_compute", "budget_images": batch_images * steps, "epochs": 1,
                      "lr": 1e-3, "weight_decay": 0.1, "warmup_steps": 1, "checkpoint_every": 2,
                      "negclip": {"neighbour_model": "pixels", "k": 2}}}


def test_killed_run_resumes_to_identical_weights(world_data, tmp_path):
    torch.set_num_threads(1)
    config = tiny_config(5)
    train(config, "negclip", 0, world_data, tmp_path / "straight")
    interrupted = tmp_path / "interrupted"
    assert train(config, "negclip", 0, world_data, interrupted, stop_after_steps=3) == {"stopped_at": 3}
    assert (interrupted / "checkpoint.pt").exists() and not (interrupted / "model.pt").exists()
    summary = train(config, "negclip", 0, world_data, interrupted)
    assert summary["steps"] == 5 and summary["images_seen"] == 40
    a = torch.load(tmp_path / "straight" / "model.pt", weights_only=False)
    b = torch.load(interrupted / "model.pt", weights_only=False)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["config"] == config and b["step"] == 5
    assert not (interrupted / "checkpoint.pt").exists()


def test_paper_scale_model_builds_and_takes_one_step_on_cpu():
    from dualclip.train.loss import DualContrastiveLoss
    from dualclip.train.models import create_model

    with pytest.raises(ValueError, match="QuickGELU"):
        create_model("ViT-B-32", "openai")
    model, preprocess, tokenizer = create_model("ViT-B-32-quickgelu", None)
    assert model.visual.image_size == (224, 224) and len(tokenizer.encoder) == 49408
    images = torch.randn(2, 3, 224, 224)
    texts = tokenizer(["a red circle", "a blue square"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    image_features = torch.nn.functional.normalize(model.encode_image(images), dim=-1)
    text_features = torch.nn.functional.normalize(model.encode_text(texts), dim=-1)
    loss = DualContrastiveLoss()(image_features, text_features, model.logit_scale.exp(), torch.arange(2), torch.arange(2))["loss"]
    before = model.visual.proj.detach().clone()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.visual.proj)
