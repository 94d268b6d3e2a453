"""Batch plans of every method, matched compute, resume, and the paper-scale model."""

import itertools
import os

import numpy as np
import pandas as pd
import pytest
import torch

from dualclip.data.shapes import WorldConfig, world_record
from dualclip.eval import label_with_run
from dualclip.io import write_png
from dualclip.train.batches import Sample, TrainData, build_train_data, nearest_neighbours, plan_epoch
from dualclip.train.methods import METHODS
from dualclip.train.trainer import count_steps, train
from helpers import tiny_config


def toy_data(n=12, duals_per=3):
    samples, files = [], []
    for i in range(n):
        sample = Sample(image=len(files), caption=f"caption {i}", negatives=[f"negative {i}"])
        files.append(f"img{i}")
        for d in range(duals_per if i % 3 else 0):  # every third sample has no dual
            sample.duals.append((len(files), f"dual {i}.{d}"))
            sample.dual_subsets.append(((0,), (1,), (0, 1), (2,))[d % 4])
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


def test_ours_soft_plans_the_batches_of_ours_with_each_members_subset():
    data = toy_data()
    soft = plan_epoch("ours_soft", data, 8, np.random.default_rng(2))
    ours = plan_epoch("ours", data, 8, np.random.default_rng(2))
    assert [b.images for b in soft] == [b.images for b in ours] and [b.texts for b in soft] == [b.texts for b in ours]
    assert all(not b.image_lattice for b in ours)
    for batch in soft:
        assert len(batch.image_lattice) == len(batch.images) and len(batch.text_lattice) == len(batch.texts)
        for image, (_, bits) in zip(batch.images, batch.image_lattice):
            sample = next(s for s in data.samples if image == s.image or image in [i for i, _ in s.duals])
            expected = 0 if image == sample.image else sum(1 << c for c in sample.dual_subsets[[i for i, _ in sample.duals].index(image)])
            assert bits == expected  # the original is the empty subset; a dual its removed components
        # one group per sample, its members consecutive
        groups = [group for group, _ in batch.image_lattice]
        assert groups == sorted(groups) and len(set(groups)) == batch.n_originals


def test_ours_soft_trains_and_every_summary_records_its_subset_policy(tmp_path):
    torch.set_num_threads(1)
    records = []
    for index in range(6):
        image, _, record = world_record(WorldConfig(seed=4), "train", index)
        write_png(tmp_path / f"{index}.png", image)
        duals = []
        for subset in ((0,), (1,), (0, 1)):
            write_png(tmp_path / f"{index}-{subset}.png", image[::-1])
            duals.append({"file": str(tmp_path / f"{index}-{subset}.png"), "text": f"{record['caption']} {subset}", "subset": list(subset)})
        records.append({"image": str(tmp_path / f"{index}.png"), "caption": record["caption"], "duals": duals})
    config = tiny_config(2)
    with pytest.raises(ValueError, match="train.ours_soft.lambda"):
        train(config, "ours_soft", 0, build_train_data(records), tmp_path / "no_lambda")
    config["train"]["ours_soft"] = {"lambda": 2.0}
    summary = train(config, "ours_soft", 0, build_train_data(records), tmp_path / "soft")
    assert summary["steps"] == 2 and summary["subset_policy"] == "all" and summary["duals_per_image"] == 3
    singles = train(config, "ours@singletons", 0, build_train_data(records, subsets="singletons"), tmp_path / "singletons")
    assert singles["subset_policy"] == "singletons" and singles["duals_per_image"] == 2
    assert singles["n_duals_left_out_by_policy"] == 6 and singles["sample_k"] is None
    baseline = train(config, "baseline", 0, build_train_data(records), tmp_path / "baseline")
    assert baseline["subset_policy"] is None and baseline["duals_per_image"] == 0
    assert (baseline["n_train"], baseline["n_samples"]) == (6, 6)  # called directly: the set is its samples
    # planned on 8 images of which 2 were skipped at download: named n8, trained on 6
    skipped = train(config, "baseline", 0, build_train_data(records), tmp_path / "planned", n_train=8)
    assert (skipped["n_train"], skipped["n_samples"]) == (8, 6)


def test_scores_carry_the_planned_training_set_size_and_old_checkpoints_say_so():
    summary, per_item = pd.DataFrame({"value": [1.0]}), pd.DataFrame({"item": [0]})
    label_with_run(summary, per_item, {"method": "ours", "seed": 1, "n_train": 8, "n_samples": 6, "code_version": "x"})
    assert summary["n_train"].tolist() == [8] and per_item["n_train"].tolist() == [8]
    with pytest.raises(ValueError, match="predates the recorded n_train.*forcerun train"):
        label_with_run(pd.DataFrame({"value": [1.0]}), pd.DataFrame({"item": [0]}), {"method": "ours", "seed": 1, "n_samples": 6, "code_version": "x"})


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


def test_killed_run_resumes_to_identical_weights(world_data, tmp_path):
    torch.set_num_threads(1)
    config = tiny_config(5)
    train(config, "negclip", 0, world_data, tmp_path / "straight")
    interrupted = tmp_path / "interrupted"
    assert train(config, "negclip", 0, world_data, interrupted, stop_after_steps=3) == {"stopped_at": 3}
    assert (interrupted / "checkpoint.pt").exists() and not (interrupted / "model.pt").exists()
    summary = train(config, "negclip", 0, world_data, interrupted)
    assert summary["steps"] == 5 and summary["images_seen"] == 40
    a = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    b = torch.load(interrupted / "model.pt", weights_only=True)
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


def preloaded_reference_weights(config, method, data, steps):
    """The training loop as it was before streaming: every image preloaded into one tensor
    and indexed per batch (the equivalence below proves the DataLoader path changes nothing)."""
    import math

    from dualclip.train.distributed import Context
    from dualclip.train.loss import DualContrastiveLoss
    from dualclip.train.trainer import (
        autocast_factory,
        compute_neighbours,
        initial_model,
        iterate_plan,
        load_images,
        lr_lambda,
        make_optimizer,
        training_step,
    )

    model, preprocess, tokenizer = initial_model(config["model"], 0)
    images = load_images(data.image_files, preprocess)
    neighbours = compute_neighbours(data, preprocess, config["train"]["negclip"], model) if "negclip" in method else None
    model.train()
    optimizer = make_optimizer(model, config["train"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config["train"]["warmup_steps"], steps))
    context, loss_fn = Context(device=torch.device("cpu")), DualContrastiveLoss()
    batches = []
    for step, _, batch in iterate_plan(method, data, config["train"]["batch_images"], 0, neighbours, 0):
        if step >= steps:
            break
        batches.append(batch.images)
        loss = training_step(model, loss_fn, tokenizer, images[batch.images], batch, context, autocast_factory(context.device, "fp32"))["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
    return model.state_dict(), batches


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_images_train_the_same_weights_as_preloaded_images(world_data, tmp_path, workers):
    torch.set_num_threads(1)
    config = tiny_config(4)
    config["train"]["loader_workers"] = workers
    expected, _ = preloaded_reference_weights(config, "negclip", world_data, 4)
    train(config, "negclip", 0, world_data, tmp_path)
    streamed = torch.load(tmp_path / "model.pt", weights_only=True)["model"]
    for key in expected:
        assert torch.equal(expected[key], streamed[key]), key


def test_the_loader_reads_each_planned_batch_in_plan_order(world_data):
    from dualclip.train.models import create_model
    from dualclip.train.trainer import ImageFiles, image_loader, iterate_plan, load_images

    _, preprocess, _ = create_model("dualclip-tiny", None)
    preloaded = load_images(world_data.image_files, preprocess)
    plan = [batch for _, _, batch in itertools.islice(iterate_plan("ours", world_data, 8, 0, None, 0), 6)]
    loader = image_loader(ImageFiles(world_data.image_files, preprocess), [b.images for b in plan], 2, torch.device("cpu"))
    for batch, pixels in zip(plan, loader, strict=True):
        assert torch.equal(pixels, preloaded[batch.images])
    # a process whose share of a small batch is empty gets an empty tensor of the image shape
    empty = image_loader(ImageFiles(world_data.image_files, preprocess), [[]], 0, torch.device("cpu"))
    assert next(iter(empty)).shape == (0, *preloaded.shape[1:])


def test_blockwise_neighbours_equal_the_dense_matrix_ties_to_the_lower_index():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(500, 16)).astype(np.float32)
    embeddings[7] = embeddings[3]  # a duplicate image: tied similarities
    embeddings[9] = embeddings[3]
    normed = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    similarity = normed @ normed.T
    np.fill_diagonal(similarity, -np.inf)
    dense = np.argsort(-similarity, axis=1, kind="stable")[:, :3]
    # 13 rows per block: many blocks, the last one partial
    assert np.array_equal(nearest_neighbours(embeddings, 3, max_block_bytes=4 * 500 * 13), dense)
    assert nearest_neighbours(embeddings, 3)[3].tolist()[:2] == [7, 9]


def test_neighbours_are_cached_by_model_and_data(world_data, tmp_path):
    from dualclip.train.models import create_model
    from dualclip.train.trainer import compute_neighbours, neighbour_cache_key

    model, preprocess, _ = create_model("dualclip-tiny", None)
    settings = {"neighbour_model": "pixels", "k": 2}
    key = neighbour_cache_key(world_data, settings, {"name": "dualclip-tiny"}, 0)
    cache = tmp_path / f"neighbours-{key}.npy"
    first = compute_neighbours(world_data, preprocess, settings, model, cache_file=cache)
    assert cache.exists() and np.array_equal(np.load(cache), first)
    before = cache.read_bytes()
    cache.unlink()
    compute_neighbours(world_data, preprocess, settings, model, cache_file=cache)
    assert cache.read_bytes() == before  # the same table, the same bytes (local and cluster runs compare them)
    # the key changes with k, with the embedding model and with the images' content, not their timestamps
    assert neighbour_cache_key(world_data, {**settings, "k": 3}, {"name": "dualclip-tiny"}, 0) != key
    assert neighbour_cache_key(world_data, {**settings, "neighbour_model": "initial"}, {"name": "dualclip-tiny"}, 0) != key
    image = world_data.image_files[0]
    os.utime(image, ns=(os.stat(image).st_atime_ns, os.stat(image).st_mtime_ns + 10**9))
    assert neighbour_cache_key(world_data, settings, {"name": "dualclip-tiny"}, 0) == key
    assert neighbour_cache_key(world_data, settings, {"name": "dualclip-tiny"}, 0, originals_digest="other") != key
