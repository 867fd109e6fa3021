"""Serving fixtures: the small trained AsymDiffRec (tests/conftest.py) in a BentoML store of its own."""
from __future__ import annotations

import pytest

from tests.serving.helpers import save_model


@pytest.fixture(scope="session")
def model_store(tmp_path_factory, checkpoint):
    home = tmp_path_factory.mktemp("bentoml")
    return home, save_model(home, checkpoint, "production")
