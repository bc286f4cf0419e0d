"""The docs site builds in strict mode (a broken link, a missing page or anchor fails), and the
README stays a front page."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.stack import REPO_ROOT


def test_docs_site_builds_strict(tmp_path: Path) -> None:
    """`mkdocs build --strict`, as `make docs` runs it, with the reference pages generated."""
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert build.returncode == 0, build.stderr[-5000:]
    for page in (
        "reference/api/index.html",
        "reference/settings/index.html",
        "reference/openapi.json",
    ):
        assert (tmp_path / "site" / page).is_file(), page
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "/v1/deposits" in api and "/v1/wallet/bets" in api


def test_readme_is_a_front_page() -> None:
    """The README is the front door: under 300 lines, the rest in the docs site."""
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert len(lines) < 300, f"README.md has {len(lines)} lines; move sections into docs/"


def test_readme_links_resolve() -> None:
    """The README is not part of the site's strict build: its links to the docs are checked here."""
    readme = (REPO_ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    broken = [
        target
        for target in targets
        if not target.startswith(("http://", "https://", "mailto:"))
        and not (REPO_ROOT / target).exists()
    ]
    assert targets and not broken, f"README.md links to missing files: {broken}"
