"""Every curl example of the README and the docs, run as written against the test stack.

A page's fenced `bash` blocks run in order in one bash process (so a variable a newcomer sets in an
earlier block is there in a later one), with the dev stack's addresses pointed at the test stack's
API and sandbox PSP. What the examples promise is checked:

- a comment line `# => 201 ...` after a command: the last curl's HTTP status is 201 (the rest of
  the line, an abridged answer, is for the reader);
- a comment line `# => {...}` with no status: the last curl's status is 2xx;
- a curl answered outside 2xx with no such comment after it fails the page;
- any failing command fails it (`set -e`, `pipefail`): a `jq -e` check, a `grep`.

A failure names the page and line. Blocks that are not meant to run (configuration files, a
deployment's commands) use another fence (`sh`, `toml`, `properties`...), and a curl in such a
block fails `test_every_curl_example_runs`: an example that is not run drifts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.stack import REPO_ROOT, Stack

EXAMPLE_PAGES = [
    REPO_ROOT / "README.md",
    *sorted(p for p in (REPO_ROOT / "docs").rglob("*.md") if "hooks" not in p.parts),
]
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
EXPECTATION = re.compile(r"^\s*# =>\s*(\d{3})?")
DEV_API = ("http://127.0.0.1:8000", "http://localhost:8000")
DEV_PSP = ("http://127.0.0.1:8100", "http://localhost:8100")

# What every page's script starts with: curl wrapped to record each answer's status, and the
# checks the expectation comments become. Failures print `__FAIL <script line> <why>`.
PREAMBLE = r"""
set -eE -o pipefail
__STATUS=$(mktemp)
__fail() { echo "__FAIL $1 $2" >&2; exit 1; }
trap '__fail $LINENO "the command failed (exit status $?)"' ERR
__unchecked() {
  local code line checked
  [ -s "$__STATUS" ] || return 0
  read -r code line checked < "$__STATUS"
  if [ "$checked" = 0 ] && [ "${code:0:1}" != 2 ]; then
    __fail "$line" "curl answered $code, and no '# => $code' comment follows it"
  fi
}
curl() {
  __unchecked
  local body code
  body=$(mktemp)
  code=$(command curl -sS -o "$body" -w '%{http_code}' "$@") \
    || __fail "${BASH_LINENO[0]}" "curl could not connect"
  cat "$body"
  rm -f "$body"
  echo "$code ${BASH_LINENO[0]} 0" > "$__STATUS"
}
__expect() {  # __expect <line> [status]
  local code line checked
  [ -s "$__STATUS" ] || __fail "$1" "an expected answer, but no curl ran before it"
  read -r code line checked < "$__STATUS"
  if [ -n "$2" ]; then
    [ "$code" = "$2" ] || __fail "$line" "curl answered $code where the example says $2"
  else
    [ "${code:0:1}" = 2 ] || __fail "$line" "curl answered $code where the example expects success"
  fi
  echo "$code $line 1" > "$__STATUS"
}
""".strip().splitlines()


@dataclass
class Line:
    text: str
    number: int  # in the page, from 1


def bash_blocks(page: Path) -> list[list[Line]]:
    """The page's fenced `bash` blocks, each a list of its lines with their numbers."""
    blocks: list[list[Line]] = []
    current: list[Line] | None = None
    fence = ""
    for number, text in enumerate(page.read_text().splitlines(), start=1):
        match = FENCE.match(text)
        if current is None and match and not fence:
            fence = match.group(2) or "text"
            if fence == "bash":
                current = []
            continue
        if fence and match and not match.group(2):
            if current is not None:
                blocks.append(current)
            current, fence = None, ""
            continue
        if current is not None:
            current.append(Line(text, number))
    return blocks


def fenced_blocks(page: Path) -> list[tuple[str, int, str]]:
    """Every fenced block of the page: (language, first line, text)."""
    found: list[tuple[str, int, str]] = []
    language, start, lines = "", 0, []  # type: ignore[var-annotated]
    inside = False
    for number, text in enumerate(page.read_text().splitlines(), start=1):
        match = FENCE.match(text)
        if not inside and match:
            inside, language, start, lines = True, match.group(2) or "", number, []
        elif inside and match and not match.group(2):
            found.append((language, start, "\n".join(lines)))
            inside = False
        elif inside:
            lines.append(text)
    return found


def script_of(page: Path, stack: Stack) -> tuple[str, dict[int, int]]:
    """The page's bash blocks as one script, and each script line's line in the page."""
    lines = list(PREAMBLE)
    where: dict[int, int] = {}
    for block in bash_blocks(page):
        for line in block:
            text = line.text
            for dev in DEV_API:
                text = text.replace(dev, stack.api_url)
            for dev in DEV_PSP:
                text = text.replace(dev, stack.psp.url)
            text = re.sub(r"(?<![\w/])localhost:8000", stack.api_url, text)
            text = re.sub(r"(?<![\w/])localhost:8100", stack.psp.url, text)
            expectation = EXPECTATION.match(text)
            if expectation:
                text = f"__expect {line.number} {expectation.group(1) or ''}"
            lines.append(text)
            where[len(lines)] = line.number
    lines.append("__unchecked")
    return "\n".join(lines) + "\n", where


def pages_with_examples() -> list[Path]:
    return [page for page in EXAMPLE_PAGES if bash_blocks(page)]


def test_every_curl_example_runs() -> None:
    """A curl outside a `bash` block would never be run, and would drift."""
    strays = [
        f"{page.relative_to(REPO_ROOT)}:{start} (```{language or '(none)'})"
        for page in EXAMPLE_PAGES
        for language, start, text in fenced_blocks(page)
        if language != "bash" and re.search(r"(^|\s|\()curl\s", text)
    ]
    assert not strays, f"curl examples outside a ```bash block (not run): {strays}"
    assert pages_with_examples(), "no page has a runnable example"


def run_page(page: Path, stack: Stack, tmp_path: Path) -> str | None:
    """Run the page's examples; None when they pass, else what failed, naming the page's line."""
    script, where = script_of(page, stack)
    script_path = tmp_path / "examples.sh"
    script_path.write_text(script)
    run = subprocess.run(
        ["bash", str(script_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": f"{REPO_ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"},
    )
    if run.returncode == 0:
        return None
    name = page.relative_to(REPO_ROOT) if page.is_relative_to(REPO_ROOT) else page.name
    output = f"\n--- output (end) ---\n{run.stdout[-3000:]}\n--- errors ---\n{run.stderr[-2000:]}"
    failure = re.search(r"^__FAIL (\d+) (.*)$", run.stderr, re.MULTILINE)
    if not failure:
        return f"{name}: exit status {run.returncode}{output}"
    script_line, why = int(failure.group(1)), failure.group(2)
    page_line = where.get(script_line)
    place = f"{name}:{page_line}" if page_line else f"{name} (script line {script_line})"
    return f"{place}: {why}{output}"


@pytest.mark.parametrize("page", pages_with_examples(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_examples_of_page_run_as_written(page: Path, stack: Stack, tmp_path: Path) -> None:
    """The page's bash blocks, in order, in one bash process against the test stack."""
    assert shutil.which("jq"), "the examples use jq: apt-get install jq"
    try:
        failure = run_page(page, stack, tmp_path)
    finally:  # a page that stopped midway leaves no provider down for the tests after it
        for provider in ("sandbox-cards", "sandbox-bank"):
            httpx.post(f"{stack.psp.url}/{provider}/_sandbox/mode", json={"mode": "ok"}, timeout=10)
    if failure:
        pytest.fail(failure)


WRONG_PAGES = {
    "wrong status": (
        "# Page\n\n```bash\nAPI=http://127.0.0.1:8000\n"
        'curl -s -H "Authorization: Bearer sk_test_merchant" $API/v1/customers/cus_missing\n'
        "# => 200 {...}\n```\n",
        "page.md:5: curl answered 404 where the example says 200",
    ),
    "unchecked failure": (
        "# Page\n\n```bash\nAPI=http://127.0.0.1:8000\n"
        'curl -s -H "Authorization: Bearer sk_test_merchant" $API/v1/customers/cus_missing\n'
        "echo next\n```\n",
        "page.md:5: curl answered 404, and no '# => 404' comment follows it",
    ),
    "failed check": (
        "# Page\n\n```bash\nAPI=http://127.0.0.1:8000\n"
        "curl -s $API/healthz | jq -e '.status == \"no such status\"'\n```\n",
        "page.md:5: the command failed",
    ),
}


@pytest.mark.parametrize("case", sorted(WRONG_PAGES))
def test_a_wrong_example_fails_naming_its_line(case: str, stack: Stack, tmp_path: Path) -> None:
    """The runner itself: a status other than promised, a failure nobody expected, a false check."""
    text, expected = WRONG_PAGES[case]
    page = tmp_path / "page.md"
    page.write_text(text)
    failure = run_page(page, stack, tmp_path)
    assert failure is not None and failure.startswith(expected), failure
