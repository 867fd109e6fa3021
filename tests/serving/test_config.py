"""Which model the service serves: an explicit tag, the Bento's own, or the production pointer."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.params import PROJECT_ROOT
from serving.config import ServingConfig, packaged_model_tag

NAME = "asymdiffrec"


def test_a_built_bento_serves_the_model_it_was_packaged_with(tmp_path):
    marker = tmp_path / "packaged_model.json"
    marker.write_text(json.dumps({"tag": "asymdiffrec:abc123"}))
    assert packaged_model_tag("asymdiffrec", marker) == "asymdiffrec:abc123"
    assert packaged_model_tag("asymdiffrec", tmp_path / "absent.json") is None
    marker.write_text(json.dumps({"tag": "other:1"}))
    with pytest.raises(RuntimeError, match="not a version of 'asymdiffrec'.*rebuild the Bento"):
        packaged_model_tag("asymdiffrec", marker)


def test_a_checkout_has_no_packaged_model():
    assert not (PROJECT_ROOT / "serving" / "packaged_model.json").exists()
    assert "/serving/packaged_model.json" in (PROJECT_ROOT / ".gitignore").read_text()


def test_no_production_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path))
    monkeypatch.delenv("ASYMDIFFREC_MODEL_TAG", raising=False)
    with pytest.raises(RuntimeError, match="no production model named 'nobody'.*ASYMDIFFREC_MODEL_TAG"):
        ServingConfig(model_name="nobody").model_tag()
    monkeypatch.setenv("ASYMDIFFREC_MODEL_TAG", "nobody:v1")
    assert ServingConfig(model_name="nobody").model_tag() == "nobody:v1"


def test_unknown_serving_keys_are_named(tmp_path, monkeypatch):
    params = tmp_path / "params.yaml"
    params.write_text("serving:\n  max_candidate: 10\n")
    monkeypatch.setenv("ASYMDIFFREC_PARAMS", str(params))
    with pytest.raises(ValueError, match="serving has unknown key.*max_candidate"):
        ServingConfig.load()
    params.write_text("serving:\n  workers: 0\n")
    with pytest.raises(ValueError, match="serving.workers must be an integer >= 1"):
        ServingConfig.load()
    params.write_text("serving:\n  max_candidates: 7\n")
    assert ServingConfig.load().max_candidates == 7


def _save(name: str, stage: str) -> str:
    """A model version in the (real) store, as the promote step saves one."""
    from components.lifecycle import model_registry as registry

    folder = Path(os.environ["BENTOML_HOME"]).parent / f"ckpt-{stage}"
    folder.mkdir(exist_ok=True)
    (folder / "weights.pt").write_bytes(os.urandom(64))
    return registry.save_to_store(folder, name, {"stage": stage}, {})


def test_a_bare_model_name_serves_the_production_model_never_the_newest_refused_one(tmp_path, monkeypatch):
    from components.lifecycle import model_registry as registry

    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    monkeypatch.setenv("ASYMDIFFREC_MODEL_TAG", NAME)
    with pytest.raises(registry.StoreError, match=f"'{NAME}' names no version and '{NAME}' has no production model.*{NAME}:<version>"):
        ServingConfig().model_tag()

    production = _save(NAME, "production")
    registry.set_production(NAME, production)
    refused = _save(NAME, "candidate")  # newer: what BentoML itself would take for the bare name
    import bentoml

    assert str(bentoml.models.get(NAME, _model_store=registry._model_store()).tag) == refused
    assert ServingConfig().model_tag() == production
    monkeypatch.setenv("ASYMDIFFREC_MODEL_TAG", f"{NAME}:latest")
    assert ServingConfig().model_tag() == production
    monkeypatch.setenv("ASYMDIFFREC_MODEL_TAG", refused)  # a full tag is taken as given
    assert ServingConfig().model_tag() == refused


def test_a_bento_yaml_above_the_checkout_does_not_pick_the_served_model(tmp_path):
    """serving/config.py once read <checkout>/../bento.yaml (where a built Bento keeps its own)."""
    checkout = tmp_path / "checkout"
    for package in ("common", "components", "models", "serving"):
        shutil.copytree(PROJECT_ROOT / package, checkout / package, ignore=shutil.ignore_patterns("__pycache__", "packaged_model.json"))
    (tmp_path / "bento.yaml").write_text("services:\n- name: asymdiffrec\n  models:\n  - tag: asymdiffrec:planted\n")
    store = tmp_path / "store"
    (store / "production").mkdir(parents=True)
    (store / "production" / f"{NAME}.json").write_text(json.dumps({"tag": f"{NAME}:promoted"}))
    env = {k: v for k, v in os.environ.items() if k not in ("ASYMDIFFREC_MODEL_TAG", "ASYMDIFFREC_PARAMS")}
    proc = subprocess.run(
        [sys.executable, "-c", "from serving.config import ServingConfig; print(ServingConfig().model_tag())"],
        cwd=checkout, env={**env, "BENTOML_HOME": str(store)}, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == f"{NAME}:promoted"
