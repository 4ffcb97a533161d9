"""The access line's shape: what both request paths write for every request."""

from __future__ import annotations

import json
import re

import pytest

from gateway.accesslog import THREE_DIGITS, access_line, utc_now_iso


def line(elapsed: float, **overrides: str | None) -> str:
    fields: dict[str, str | None] = {"path": "/api/v3/x", "remote": "127.0.0.1",
                                     "principal": None, "refusal": None, **overrides}
    return access_line(request_id="r1", trace_id="t1", method="GET", path=str(fields["path"]),
                       status=200, route="api", region="sg", upstream="http://a:1",
                       elapsed=elapsed, bytes_in=3, bytes_out=11, remote=fields["remote"],
                       principal=fields["principal"], refusal=fields["refusal"])


@pytest.mark.parametrize(("elapsed", "text"), [
    (0.0, '"durationMs":0.000,'),
    (0.000_000_4, '"durationMs":0.000,'),
    (0.000_000_6, '"durationMs":0.001,'),
    (0.001_313, '"durationMs":1.313,'),
    (0.25, '"durationMs":250.000,'),
    (12.345_678_9, '"durationMs":12345.679,'),
])
def test_the_duration_has_three_decimals(elapsed: float, text: str) -> None:
    assert text in line(elapsed)


def test_the_line_is_one_json_object_with_every_field() -> None:
    entry = json.loads(line(0.002, path='/a"b\\c\u00e9', principal="access:n:u",
                            refusal="expired"))
    assert entry == {
        "time": entry["time"], "requestId": "r1", "traceId": "t1", "method": "GET",
        "path": '/a"b\\c\u00e9', "status": 200, "route": "api", "region": "sg",
        "upstream": "http://a:1", "durationMs": 2.0, "bytesIn": 3, "bytesOut": 11,
        "remote": "127.0.0.1", "principal": "access:n:u", "refusal": "expired"}
    assert "refusal" not in json.loads(line(0.002))
    assert json.loads(line(0.002, remote=None))["remote"] is None


def test_the_time_is_utc_to_the_millisecond() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc_now_iso())
    assert THREE_DIGITS[0] == "000" and THREE_DIGITS[7] == "007" and THREE_DIGITS[999] == "999"
    assert len(THREE_DIGITS) == 1000
