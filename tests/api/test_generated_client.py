"""The API as a generated client sees it: `openapi-python-client` generates a client from the
stack's own `/openapi.json`, `mypy --strict` checks a merchant's short program against it
(tests/api/generated_client_program.py), and the program runs against the test stack.

openapi-python-client 0.29 flattens an object query parameter (`order_id=123`) whatever its
`style`; the one template given here (generated_client/endpoint_macros.py.jinja, the generator's
own with one line changed) sends it as the document says, a deepObject: `metadata[order_id]=123`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from paysaga.settings import DEV_MERCHANT_KEY
from tests.stack import Stack

HERE = Path(__file__).resolve().parent
PROGRAM = HERE / "generated_client_program.py"
TEMPLATES = HERE / "generated_client"
BIN = Path(sys.executable).parent
CONFIG = "project_name_override: paysaga-api-client\npackage_name_override: paysaga_api_client\n"


def run(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        env={**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def generate_client(stack: Stack, tmp_path: Path) -> Path:
    """The client package generated from the stack's document; its parent folder."""
    document = httpx.get(f"{stack.api_url}/openapi.json", timeout=30)
    assert document.status_code == 200, document.text
    (tmp_path / "openapi.json").write_text(document.text)
    (tmp_path / "config.yaml").write_text(CONFIG)
    generated = tmp_path / "client"
    generated.mkdir()
    run_ = run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            "openapi.json",
            "--config",
            "config.yaml",
            "--custom-template-path",
            str(TEMPLATES),
            "--meta",
            "none",
            "--output-path",
            str(generated / "paysaga_api_client"),
        ],
        tmp_path,
    )
    assert run_.returncode == 0, run_.stdout + run_.stderr
    # Nothing of the document was skipped (the generator warns per endpoint or model it drops).
    assert "Unable to" not in run_.stdout + run_.stderr, run_.stdout + run_.stderr
    return generated


def test_a_generated_client_takes_and_finds_a_deposit(stack: Stack, tmp_path: Path) -> None:
    generated = generate_client(stack, tmp_path)

    mypy = run(
        [
            str(BIN / "mypy"),
            "--strict",
            "--follow-imports=silent",  # the generated code is the generator's; the program ours
            "--no-incremental",
            "--config-file=/dev/null",
            str(PROGRAM),
        ],
        tmp_path,
        MYPYPATH=str(generated),
    )
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr

    program = run(
        [sys.executable, str(PROGRAM)],
        tmp_path,
        PYTHONPATH=str(generated),
        PAYSAGA_API_URL=stack.api_url,
        PAYSAGA_API_KEY=DEV_MERCHANT_KEY,
    )
    assert program.returncode == 0, program.stdout + program.stderr
    seen = json.loads(program.stdout.strip().splitlines()[-1])
    assert seen["status"] == "succeeded", seen
    assert seen["order_id"].startswith("order-")
    assert seen["listed_by_order_id"] == [seen["payment_id"]]
    assert seen["customers_listed_by_crm_id"] == [seen["customer_id"]]
