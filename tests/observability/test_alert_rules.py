"""The alerting rules (deploy/prometheus/alerts.yml) checked by Debian's promtool: valid, each
with a runbook section, and unit-tested to fire when it should and stay quiet when it should not."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: apt-get install prometheus (make test installs it)")
    return found


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules() -> None:
    done = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    done = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    ]
    for rule in alerts():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']} never fires in a test"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']} never quiet"


def test_every_alert_has_its_runbook_section() -> None:
    sections = {
        re.sub(r"[^a-z0-9]", "", line.lstrip("#").strip().lower())
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    for rule in alerts():
        anchor = rule["annotations"]["runbook_url"]
        assert anchor == f"docs/runbooks.md#{rule['alert'].lower()}", anchor
        assert rule["alert"].lower() in sections, f"no section {rule['alert']} in {RUNBOOKS}"
        assert rule["labels"]["severity"] in {"page", "ticket"}
