"""Which model the service serves: an explicit tag, the Bento's own, or the production pointer."""
from __future__ import annotations

import pytest

from serving.config import ServingConfig, packaged_model_tag


def test_a_built_bento_serves_the_model_it_was_packaged_with(tmp_path):
    bento_yaml = tmp_path / "bento.yaml"
    bento_yaml.write_text(
        "services:\n- name: asymdiffrec\n  models:\n  - tag: other:1\n  - tag: asymdiffrec:abc123\n"
    )
    assert packaged_model_tag("asymdiffrec", bento_yaml) == "asymdiffrec:abc123"
    assert packaged_model_tag("asymdiffrec", tmp_path / "absent.yaml") is None


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
    with pytest.raises(ValueError, match="max_candidate"):
        ServingConfig.load()
