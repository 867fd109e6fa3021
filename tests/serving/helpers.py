"""Helpers shared by the serving tests: Feast configs into the test workspace, models in a BentoML store,
and a load generator that keeps calling the service while a test breaks its store."""
from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import requests
import yaml


def fs_yaml_for(workspace, tmp: Path, online: dict, name: str) -> Path:
    """A Feast config with absolute paths into the test workspace."""
    data = workspace.root / "data" / "feast"
    config = yaml.safe_load((workspace.repo_dir / "feature_store.yaml").read_text())
    config.update(registry=str(data / "registry.db"), online_registry=str(data / name / "registry.db"), online_store=online)
    path = tmp / f"feature_store.{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def save_model(home: Path, checkpoint_dir: Path, stage: str) -> str:
    """Copy a checkpoint into the BentoML store at `home`, whatever store this process used before."""
    import bentoml

    from components.lifecycle.model_store import bentoml_model_store, use_bentoml_home

    previous = os.environ.get("BENTOML_HOME")
    try:
        use_bentoml_home(home)
        with bentoml.models.create("asymdiffrec", labels={"stage": stage}, _model_store=bentoml_model_store()) as ref:
            for f in Path(checkpoint_dir).iterdir():
                shutil.copy(f, Path(ref.path) / f.name)
        return str(ref.tag)
    finally:
        if previous is None:
            os.environ.pop("BENTOML_HOME", None)
        else:
            os.environ["BENTOML_HOME"] = previous


class Load:
    """Threads posting the same /rank request back to back, recording (time, status, body) of each
    answer, so a test can wait for the first answer after a moment that meets a condition."""

    def __init__(self, url: str, payload: dict, threads: int = 2):
        self.url, self.payload = url, payload
        self.answers: list[tuple[float, int, dict | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    response = session.post(f"{self.url}/rank", json=self.payload, timeout=10)
                    body = response.json() if response.status_code == 200 else None
                    self.answers.append((time.monotonic(), response.status_code, body))
                except requests.RequestException:
                    self.answers.append((time.monotonic(), 0, None))

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def wait_for(self, condition, since: float, timeout: float) -> float:
        """Seconds from `since` to the first answer received after it that meets `condition(body)`."""
        deadline = since + timeout
        while time.monotonic() < deadline:
            for at, status, body in list(self.answers):
                if at > since and status == 200 and condition(body):
                    return at - since
            time.sleep(0.05)
        recent = [(round(at - since, 2), status, body and {k: body[k] for k in ("degraded", "missing")}) for at, status, body in self.answers[-3:]]
        raise AssertionError(f"no answer met the condition within {timeout}s; the last ones: {recent}")

    def errors_since(self, since: float) -> list[int]:
        """Statuses other than 200 received after `since` (a broken store must degrade, never fail)."""
        return [status for at, status, _ in self.answers if at > since and status != 200]
