"""Shared test set-up; the helpers several test modules use are in helpers.py."""

import sys
from pathlib import Path

import PIL.Image
import pytest

# ``from helpers import ...`` from every test folder, whatever pytest's import mode
sys.path.insert(0, str(Path(__file__).resolve().parent))

_PIL_OPEN = PIL.Image.open


@pytest.fixture(autouse=True)
def restore_pil_open():
    """Importing ultralytics replaces PIL.Image.open with a wrapper that, on an unreadable
    image, tries to install pi-heif and raises ImportError offline. The workflow runs
    each stage in its own process; the tests share one, so undo the patch after each test."""
    yield
    PIL.Image.open = _PIL_OPEN


@pytest.fixture(scope="module")
def world_data(tmp_path_factory):
    """16 synthetic training scenes (seed 3) as the trainer reads them, made once per module
    (a module may define its own ``world_data``)."""
    from helpers import world_train_data

    return world_train_data(tmp_path_factory.mktemp("world"), seed=3)
