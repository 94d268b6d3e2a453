"""Shared test set-up."""

import PIL.Image
import pytest

_PIL_OPEN = PIL.Image.open


@pytest.fixture(autouse=True)
def restore_pil_open():
    """Importing ultralytics replaces PIL.Image.open with a wrapper that, on an unreadable
    image, tries to install pi-heif and raises ImportError offline. The workflow runs
    each stage in its own process; the tests share one, so undo the patch after each test."""
    yield
    PIL.Image.open = _PIL_OPEN
