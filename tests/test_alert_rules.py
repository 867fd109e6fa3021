"""The Prometheus rules of deploy/prometheus: valid (`promtool check rules`), passing their unit tests
(`promtool test rules`), and reading only metrics that serving/telemetry.py really exports."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "asymdiffrec-rules.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "asymdiffrec-rules.test.yaml"
TELEMETRY = ROOT / "serving" / "telemetry.py"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus; .ci/run does)"
)

# Raw metric names (recorded series are `asymdiffrec:...`, with colons) and recorded names.
RAW_NAME = re.compile(r"(?<![\w:])asymdiffrec_[A-Za-z0-9_]+")
RECORDED_NAME = re.compile(r"(?<![\w:])asymdiffrec:[A-Za-z0-9_:]+")
SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
}


def exported_names() -> set[str]:
    """The series names serving/telemetry.py exposes: each `Counter|Gauge|Histogram|Summary(name="...")`
    with the suffixes prometheus_client adds for its type."""
    names = set()
    for kind, name in re.findall(r"\b(Counter|Gauge|Histogram|Summary)\(\s*name=\"([^\"]+)\"", TELEMETRY.read_text()):
        if kind == "Counter":
            name = name.removesuffix("_total")
        names.update(name + suffix for suffix in SUFFIXES[kind])
    return names


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@needs_promtool
def test_rules_are_valid():
    result = run_promtool("check", "rules", str(RULES.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rule_unit_tests_pass():
    result = run_promtool("test", "rules", str(RULE_TESTS.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_telemetry_names_are_parsed():
    names = exported_names()
    # A sample of each kind, so a change in telemetry.py's style cannot empty the set unnoticed.
    assert {"asymdiffrec_samples_total", "asymdiffrec_online_store_up", "asymdiffrec_feature_age_seconds_bucket"} <= names


def test_rules_reference_only_exported_metrics():
    exported = exported_names()
    texts = [rule["expr"] for rule in rules()] + [v for rule in rules() for v in rule.get("annotations", {}).values()]
    referenced = {name for text in texts for name in RAW_NAME.findall(str(text))}
    assert referenced, "no asymdiffrec_* metric found in the rules"
    unknown = sorted(referenced - exported)
    assert not unknown, f"rules reference metrics serving/telemetry.py does not export: {unknown}; exported: {sorted(exported)}"


def test_rule_tests_feed_exported_metrics():
    """The unit tests' synthetic series must be real metrics too, or they test rules against fiction."""
    exported = exported_names()
    fed = {RAW_NAME.match(series["series"]).group(0)
           for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for series in test.get("input_series", [])}
    unknown = sorted(fed - exported)
    assert not unknown, f"rule tests feed series serving/telemetry.py does not export: {unknown}"


def test_recorded_series_are_defined_and_alerts_annotated():
    all_rules = rules()
    recorded = {rule["record"] for rule in all_rules if "record" in rule}
    used = {name for rule in all_rules for name in RECORDED_NAME.findall(rule["expr"] + str(rule.get("annotations", {})))}
    assert not used - recorded, f"rules read recorded series nothing records: {sorted(used - recorded)}"
    alerts = [rule for rule in all_rules if "alert" in rule]
    assert alerts
    for alert in alerts:
        assert alert.get("labels", {}).get("severity") in {"critical", "warning", "info"}, alert["alert"]
        assert {"summary", "description"} <= set(alert.get("annotations", {})), alert["alert"]
