"""Run a benchmark's unit of work in a fresh process and measure it from outside."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_measured(code: str, log: Path, what: str) -> dict:
    """Run `python -c code` from the project root; it must print `RESULT <json>`. Returns that JSON with
    `peak_rss_mib`: the peak of the summed RSS of the process and all its children (a JVM included),
    sampled every 0.1 s. Sampled rather than the kernel's ru_maxrss, which a forked child inherits from
    its parent (a benchmark that generated its data in memory would inflate every figure)."""
    import psutil

    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    out = proc.stdout.read()
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise RuntimeError(f"{what} failed (exit {proc.returncode}); the end of its log:\n{tail}")
    result = json.loads(out.rsplit("RESULT ", 1)[1].splitlines()[0])  # a progress bar may share the line
    result["peak_rss_mib"] = peak / 2**20
    return result
