"""`python -m bench.http_layer`: the app answers its in-process game calls (no timing asserted)."""

from __future__ import annotations

import json

import pytest

from bench import http_layer


@pytest.mark.parametrize("path", ["/v1/wallet/bets", "/v1/wallet/credits"])
def test_http_layer_bench_answers_each_call(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    http_layer.main(["--path", path, "--requests", "20"])
    figures = json.loads(capsys.readouterr().out)
    assert figures["status"] == 200 and figures["cpu_us_per_request"] > 0
