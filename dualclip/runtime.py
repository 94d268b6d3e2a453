"""Where a stage computes (:func:`resolve_device`) and how its random draws are seeded
(:func:`stable_seed`), for every stage and backend. torch is imported only when a device
is resolved: the torch-free stages (the synthetic world, parsing) import this module too.
"""

from __future__ import annotations

import hashlib


def resolve_device(device: str | None = "auto"):
    """The ``torch.device`` a config's ``device`` names: ``auto`` (or empty) is the GPU when
    there is one, else the CPU; a CUDA device on a machine without CUDA is an error."""
    import torch

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available; set device: auto or cpu")
    return torch.device(device)


def stable_seed(*parts) -> int:
    """A 63-bit seed from any values, the same in every process and on every machine
    (Python's hash() is salted per process): SHA-256 of the parts joined by '/'."""
    digest = hashlib.sha256("/".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFFFFFFFFFFFFFF


def stable_seed_blake2b(*parts) -> int:
    """A 64-bit seed like :func:`stable_seed`, from BLAKE2b of the parts joined by NUL. The
    NegCLIP swap draws and the COCO image order were seeded this way before the seeders were
    shared: hashing them with SHA-256 would change which negatives and images a seed gives."""
    digest = hashlib.blake2b("\x00".join(str(part) for part in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")
