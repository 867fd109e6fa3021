"""dvc.yaml's deps cover every project module a stage runs, and the committed dvc.lock matches the
committed code and params.yaml. Stale deps make `dvc repro` skip a stage whose code changed; a stale
lock makes `dvc status` of a fresh clone report work that nobody needs to do."""
from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = "params.yaml"

# Modules a step starts in another process, which its own imports do not show.
SUBPROCESS_ENTRY_POINTS = {
    # `bentoml build` imports the service that bentofile.yaml names
    "components.lifecycle.package": lambda root: [yaml.safe_load((root / "bentofile.yaml").read_text())["service"].split(":")[0]],
}
# Files (not modules) a step reads, relative to the repository root, keyed by the module that reads them;
# each rule sees the stage too.
FEAST_CONFIG_PARAM = "feature_store.config"


def _feast_configs(root: Path, stage: dict[str, Any]) -> list[str]:
    """A stage that chooses its Feast config by param may open any feature_store*.yaml; one without the
    param opens the default (components.data.feature_store.DEFAULT_FS_YAML) only."""
    if FEAST_CONFIG_PARAM in _param_keys(stage):
        return sorted(str(p.relative_to(root)) for p in (root / "feature_repo").glob("feature_store*.yaml"))
    return ["feature_repo/feature_store.yaml"]


DATA_FILES = {
    "components.data.feature_store": _feast_configs,
    "components.lifecycle.package": lambda root, stage: ["bentofile.yaml", "serving/requirements.txt"],
}


def _param_keys(stage: dict[str, Any]) -> set[str]:
    """The params.yaml keys a stage lists (strings, or one-key mappings of a params file to its keys)."""
    keys: set[str] = set()
    for entry in stage.get("params") or []:
        if isinstance(entry, str):
            keys.add(entry)
        else:
            keys.update(k for ks in entry.values() for k in ks)
    return keys


# --- the import graph --------------------------------------------------------------------------------

def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The project file that `import name` runs, or None for a module outside the project."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _parents(name: str) -> list[str]:
    """`import a.b.c` runs a/__init__.py and a/b/__init__.py first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def imported_names(path: Path, module: str) -> set[str]:
    """Every module name an import statement in `path` may load, inside functions and under
    TYPE_CHECKING included (the lifecycle steps import torch and models lazily, in functions),
    plus importlib.import_module("literal") calls."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
        elif (
            isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return {parent for name in names if name for parent in _parents(name)}


def project_closure(entry: str, root: Path = ROOT) -> dict[str, Path]:
    """Every project module `python -m entry` can import, transitively, with its file."""
    seen: dict[str, Path] = {}
    todo = _parents(entry)
    if (path := module_file(entry, root)) is not None and path.name == "__init__.py":
        todo.append(f"{entry}.__main__")  # `python -m package` runs its __main__.py
    while todo:
        name = todo.pop()
        if name in seen or (path := module_file(name, root)) is None:
            continue
        seen[name] = path
        todo.extend(imported_names(path, name))
        if name in SUBPROCESS_ENTRY_POINTS:
            todo.extend(SUBPROCESS_ENTRY_POINTS[name](root))
    return seen


def entry_module(cmd: str) -> str:
    """X of a stage's `python -m X ...` command."""
    argv = shlex.split(cmd)
    if argv[:2] != ["python", "-m"] or len(argv) < 3:
        raise AssertionError(f"stage command {cmd!r} is not `python -m MODULE ...`; every stage calls a step's CLI")
    return argv[2]


def _path_entries(entries: list[Any] | None) -> list[str]:
    """Paths of dvc.yaml deps/outs/metrics/plots entries (a string, or a one-key mapping to options)."""
    return [e if isinstance(e, str) else next(iter(e)) for e in entries or []]


def uncovered(files: list[str], deps: list[str]) -> list[str]:
    """The files (relative to the root) that lie under none of the deps (files or folders)."""
    return [f for f in files if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)]


def stage_requirements(stage: dict[str, Any], root: Path = ROOT) -> list[str]:
    """Every project file a stage's command runs or reads: its modules' closure and their data files."""
    closure = project_closure(entry_module(stage["cmd"]), root)
    files = {str(path.relative_to(root)) for path in closure.values()}
    for module, extra in DATA_FILES.items():
        if module in closure:
            files.update(extra(root, stage))
    return sorted(files)


def load_stages(root: Path = ROOT) -> dict[str, dict[str, Any]]:
    return yaml.safe_load((root / "dvc.yaml").read_text())["stages"]


STAGES = load_stages()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_every_module_it_runs(name):
    stage = STAGES[name]
    missing = uncovered(stage_requirements(stage), _path_entries(stage.get("deps")))
    assert not missing, (
        f"stage '{name}' runs {missing} but lists none of them (nor a folder above) in its deps: editing them "
        f"would not re-run it; add them (or a folder above) to dvc.yaml"
    )


def test_the_import_graph_sees_lazy_imports_and_subprocesses():
    """Guards the check itself: train imports models only inside a function; package runs the Bento's service."""
    assert "models.train" in project_closure("components.lifecycle.train")
    assert "components.data.validate.cli" in project_closure("components.data.validate")  # via __main__.py
    assert "serving.service" in project_closure("components.lifecycle.package")
    assert "torch" not in project_closure("components.lifecycle.train")  # only project files count


def test_feast_configs_are_deps_of_the_stages_that_may_open_them():
    """A stage with the feature_store.config param may open any config; the others the default only, so
    a new Feast config re-runs the stages that can choose it and no long study."""
    assert _feast_configs(ROOT, STAGES["tax_sweep"]) == ["feature_repo/feature_store.yaml"]
    assert "feature_repo/feature_store.redis.yaml" in _feast_configs(ROOT, STAGES["materialize"])


def test_a_dropped_dep_is_reported():
    stage = STAGES["train"]
    deps = [d for d in _path_entries(stage["deps"]) if d != "models"]
    assert any(f.startswith("models/") for f in uncovered(stage_requirements(stage), deps))


# --- dvc.lock against the committed code ----------------------------------------------------------------

def _dvc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    return subprocess.run(["dvc", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


class _Absent:
    def __repr__(self) -> str:
        return "absent"


def _dotted(params: dict[str, Any], key: str) -> Any:
    """params.yaml's value at a dotted key as DVC records it, or a marker equal to nothing."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _Absent()
        node = node[part]
    return node


def _declared_params(stage: dict[str, Any]) -> set[str]:
    keys: set[str] = set()
    for entry in stage.get("params") or []:
        if isinstance(entry, str):
            keys.add(entry)
        else:
            keys.update(entry.get(PARAMS_FILE) or [])
    return keys


def _yaml12(text: str) -> dict:
    """YAML as DVC reads it (1.2, ruamel): DVC writes 1e-05 into dvc.lock, which PyYAML (1.1) reads as a string."""
    from ruamel.yaml import YAML

    return json.loads(json.dumps(YAML(typ="safe", pure=True).load(text)))


def lock_mismatches(repo: Path) -> list[str]:
    """Where `repo`'s dvc.lock disagrees with its dvc.yaml, its code and its params.yaml. Code deps are
    hashed by DVC itself (`dvc status`), data deps (the outputs of other stages) are left out: a clone
    has none. Empty when the lock was regenerated after the last code or params change."""
    stages = load_stages(repo)
    lock = _yaml12((repo / "dvc.lock").read_text()).get("stages", {})
    params = _yaml12((repo / PARAMS_FILE).read_text())
    produced = {p for s in stages.values() for kind in ("outs", "metrics", "plots") for p in _path_entries(s.get(kind))}
    problems = [f"stage '{n}' is in dvc.yaml but not in dvc.lock" for n in sorted(set(stages) - set(lock))]
    problems += [f"stage '{n}' is in dvc.lock but not in dvc.yaml" for n in sorted(set(lock) - set(stages))]
    for name in sorted(set(stages) & set(lock)):
        recorded = lock[name].get("params", {}).get(PARAMS_FILE, {})
        if set(recorded) != _declared_params(stages[name]):
            problems.append(f"{name}: params {sorted(recorded)} in dvc.lock, {sorted(_declared_params(stages[name]))} in dvc.yaml")
        problems += [
            f"{name}: param {key} is {value!r} in dvc.lock but {_dotted(params, key)!r} in params.yaml"
            for key, value in recorded.items() if _dotted(params, key) != value
        ]
    proc = _dvc(["status", "--json"], repo)
    assert proc.returncode == 0, f"dvc status failed:\n{proc.stderr[-3000:]}"
    for name, changes in json.loads(proc.stdout or "{}").items():
        for change in changes:
            if change == "changed command":
                problems.append(f"{name}: command changed since dvc.lock")
            elif isinstance(change, dict):
                problems += [
                    f"{name}: code dep {path} {state}" for path, state in change.get("changed deps", {}).items()
                    if path != PARAMS_FILE and path not in produced
                ]
    return problems


def _git(args: list[str], cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> Path:
    """A clone of the last commit: what CI and a colleague's `dvc status` see."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    dest = tmp_path_factory.mktemp("committed") / "repo"
    _git(["clone", "-q", "--no-hardlinks", str(ROOT), str(dest)], ROOT)
    return dest


def test_committed_lock_matches_committed_code_and_params(committed):
    problems = lock_mismatches(committed)
    assert not problems, "dvc.lock is stale; regenerate it with `dvc repro` and commit it:\n  " + "\n  ".join(problems)


def test_lock_check_detects_an_edit_and_a_param_change(tmp_path):
    """Guards lock_mismatches: a tiny project whose lock is fresh, then a code edit and a param change."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "step.py").write_text("import pathlib\npathlib.Path('out.txt').write_text('x')\n")
    (tmp_path / PARAMS_FILE).write_text(yaml.safe_dump({"step": {"k": 1, "unused": 0}}))
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": {
        "cmd": "python -m pkg.step", "deps": ["pkg"], "params": ["step.k"], "outs": ["out.txt"],
    }}}))
    _git(["init", "-q"], tmp_path)
    assert _dvc(["init", "-q"], tmp_path).returncode == 0
    repro = _dvc(["repro"], tmp_path)
    assert repro.returncode == 0, repro.stderr
    assert lock_mismatches(tmp_path) == []

    (tmp_path / "pkg" / "step.py").write_text((tmp_path / "pkg" / "step.py").read_text() + "# edited\n")
    assert lock_mismatches(tmp_path) == ["s: code dep pkg modified"]

    (tmp_path / PARAMS_FILE).write_text(yaml.safe_dump({"step": {"k": 2, "unused": 0}}))
    assert "s: param step.k is 1 in dvc.lock but 2 in params.yaml" in lock_mismatches(tmp_path)
