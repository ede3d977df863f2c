"""docs/http.md against the code: its status table is protocol/errors.py HTTP_STATUS."""

from __future__ import annotations

import re
from pathlib import Path

from roomhub.protocol.errors import HTTP_STATUS, ErrorCode

HTTP_MD = (Path(__file__).resolve().parents[2] / "docs" / "http.md").read_text("utf-8")


def test_the_status_table_is_the_code_table() -> None:
    rows = re.findall(r"^\| (1000\d\d) \| ([A-Z_]+) \| (\d{3}) \|$", HTTP_MD, re.MULTILINE)
    documented = {ErrorCode(int(code)): int(status) for code, _, status in rows}
    assert documented == HTTP_STATUS
    assert {reason for _, reason, _ in rows} == {code.reason for code in ErrorCode}


def test_every_error_code_has_a_status() -> None:
    assert set(HTTP_STATUS) == set(ErrorCode)
    assert all(400 <= status < 600 for status in HTTP_STATUS.values())
