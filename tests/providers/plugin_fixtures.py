"""Pytest plugin: the example adapter package (tests/providers/plugin_example), built and installed into a temp dir."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PLUGIN_SOURCE = Path(__file__).parent / "plugin_example"


@pytest.fixture(scope="session")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`paysaga-example-psp` installed with pip into a temp dir put on sys.path for the session.

    A real distribution (its dist-info carries the entry point), kept out of the project's venv.
    pip builds from a copy, so that no build/ or egg-info lands in the source tree.
    """
    root = tmp_path_factory.mktemp("example_plugin")
    source, target = root / "source", root / "site"
    shutil.copytree(PLUGIN_SOURCE, source)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    sys.modules.pop("paysaga_example_psp", None)
    importlib.invalidate_caches()
