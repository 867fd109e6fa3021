"""Serving fixtures: a small trained AsymDiffRec over the shared MovieLens workspace."""
from __future__ import annotations

import pytest

from tests.serving.helpers import save_model


@pytest.fixture(scope="session")
def checkpoint(workspace, tmp_path_factory):
    """A small AsymDiffRec trained for one epoch on the workspace's training split."""
    from models import fit, save_checkpoint

    features = [{"name": f.name, "view": f.view, "kind": f.kind} for f in workspace.schema.features]
    model, schema, _ = fit(
        workspace.splits["train"],
        workspace.splits["validation"],
        features,
        {"variant": "asymdiffrec", "hidden": [64, 32]},
        {"epochs": 1, "progress": False, "seed": 0},
    )
    path = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(path, model, schema)
    return path


@pytest.fixture(scope="session")
def model_store(tmp_path_factory, checkpoint):
    home = tmp_path_factory.mktemp("bentoml")
    return home, save_model(home, checkpoint, "production")
