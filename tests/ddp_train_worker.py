"""Run by tests/test_distributed.py under torchrun on a pickled (config, method, data):

- ``train JOB OUT_DIR [STOP_STEP]``: train() (stopping early like a kill with STOP_STEP);
- ``grad JOB OUT_FILE``: the parameter gradients of the first batch after DDP's averaging.
"""

import contextlib
import pickle
import sys

import torch

from dualclip.train import distributed
from dualclip.train.trainer import train


def first_batch_gradients(config, method, data, out_file):
    import numpy as np

    from dualclip.train.batches import plan_epoch
    from dualclip.train.loss import DualContrastiveLoss
    from dualclip.train.trainer import compute_neighbours, initial_model, load_images, local_images, training_step

    context = distributed.setup(torch.device("cpu"))
    model, preprocess, tokenizer = initial_model(config["model"], 0)
    images = load_images(data.image_files, preprocess)
    neighbours = compute_neighbours(data, preprocess, config["train"]["negclip"], model) if "negclip" in method else None
    batch = plan_epoch(method, data, config["train"]["batch_images"], np.random.default_rng([0, 0]), neighbours)[0]
    network = torch.nn.parallel.DistributedDataParallel(model) if context.distributed else model
    pixels = images[local_images(batch, context)]
    losses = training_step(network, DualContrastiveLoss(), tokenizer, pixels, batch, context, contextlib.nullcontext)
    losses["loss"].backward()
    if context.is_main:
        torch.save({name: p.grad for name, p in model.named_parameters()}, out_file)
    distributed.teardown(context)


if __name__ == "__main__":
    torch.set_num_threads(1)
    mode, job, out = sys.argv[1:4]
    with open(job, "rb") as handle:
        config, method, data = pickle.load(handle)
    if mode == "grad":
        first_batch_gradients(config, method, data, out)
    else:
        train(config, method, 0, data, out, stop_after_steps=int(sys.argv[4]) if len(sys.argv) > 4 else None)
