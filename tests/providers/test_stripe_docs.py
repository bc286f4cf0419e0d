"""The adapter guide (docs/providers.md) shows the Stripe adapter's code as it is: every Python
excerpt that names its file in a first-line comment appears in that file."""

from __future__ import annotations

import re

import pytest

from tests.psp_fixtures import REPO_ROOT

GUIDE = REPO_ROOT / "docs" / "providers.md"
EXCERPT = re.compile(r"```python\n# (?P<path>[\w/]+\.py)\n(?P<code>.*?)```", re.DOTALL)


def squeezed(text: str) -> str:
    """The text without whitespace: `ruff format` lays an excerpt out anew at its own indent."""
    return re.sub(r"\s+", "", text)


EXCERPTS = [(match["path"], match["code"]) for match in EXCERPT.finditer(GUIDE.read_text())]


def test_guide_has_stripe_excerpts() -> None:
    assert {path for path, _ in EXCERPTS} >= {
        "providers/stripe_psp.py",
        "tests/providers/test_stripe_conformance.py",
    }


@pytest.mark.parametrize(("path", "code"), EXCERPTS, ids=[code[:40] for _, code in EXCERPTS])
def test_excerpt_is_in_its_file(path: str, code: str) -> None:
    source = (REPO_ROOT / path).read_text()
    assert squeezed(code) in squeezed(source), f"docs/providers.md drifted from {path}"
