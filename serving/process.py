"""Run `bentoml serve` as a child process on a free loopback port (used by tests and benchmarks)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

from common.params import DEFAULT_PARAMS, load_params

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """`bentoml serve` from the repository root with its own model store, model tag and Feast config;
    returns once `wait_for` answers 200 (readiness by default; "/livez" to test a service that is not ready).

    `serving` overrides keys of params.yaml's `serving:` section (written to a params file of its own);
    the serving log goes to `<log_dir>/serving_log-<port>` unless `serving` names a `log_dir`."""

    def __init__(self, log_dir: Path, bentoml_home: Path, model_tag: str, fs_yaml: Path, extra_env: dict | None = None, timeout: float = 120,
                 wait_for: str = "/readyz", serving: dict | None = None):
        self.port = free_port()
        self.model_tag = model_tag
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log_dir) / f"serve-{self.port}.log"
        self.serving_log_dir = Path(log_dir) / f"serving_log-{self.port}"
        params = load_params(DEFAULT_PARAMS)
        params["serving"] = {**params.get("serving", {}), "log_dir": str(self.serving_log_dir), **(serving or {})}
        self.params = Path(log_dir) / f"params-{self.port}.yaml"
        self.params.write_text(yaml.safe_dump(params, sort_keys=False))
        env = dict(os.environ, BENTOML_HOME=str(bentoml_home), ASYMDIFFREC_MODEL_TAG=model_tag, FEAST_FS_YAML=str(fs_yaml),
                   ASYMDIFFREC_PARAMS=str(self.params))
        env.update(extra_env or {})
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "bentoml"), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers die with it
        )
        try:
            self._wait_ready(timeout, wait_for)
        except Exception:
            self.stop()
            raise

    def _wait_ready(self, seconds: float, route: str) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}{route}", timeout=5).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or still loading
                pass
            time.sleep(0.3)
        raise TimeoutError(f"bentoml serve not ready in {seconds}s:\n{self.log.read_text()[-3000:]}")

    def post(self, route: str, payload: dict, **kwargs) -> requests.Response:
        return requests.post(f"{self.url}{route}", json=payload, timeout=30, **kwargs)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self) -> "ServeProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
