"""Every case of the hostile catalogue against a real gateway process.

Per case: the answer is a 4xx in the contract's JSON shape (or, where the case allows it, a
silent close), with no stack trace or HTML; nothing reached the upstream; the store is
unchanged; the process is still alive and answers /healthz.
"""

from __future__ import annotations

import collections
import json

import pytest

from gateway.errors import code_for_status
from tests.hostile.catalogue import CASES, Case
from tests.hostile.conftest import System
from tests.hostile.harness import LEAK_MARKS, Answer, Exchange, Seen, exchange, http

MIN_CASES = 100


def test_the_catalogue_has_at_least_100_cases() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    strict = [case for case in CASES if case.strict and case.needs is None]
    # Counted without the guarded CSR cases, so the floor holds before that endpoint lands.
    assert len(strict) >= MIN_CASES, collections.Counter(case.category for case in strict)
    assert {case.category for case in CASES} == {
        "jwt", "smuggling", "headers", "limits", "paths", "params", "json", "csr",
        "routing"}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_case(case: Case, system: System) -> None:
    if case.needs is not None and not system.serves(*case.needs):
        pytest.skip(f"{' '.join(case.needs)} is not served by the gateway yet")
    gateway = system.gateway
    data = case.request(system.ctx)
    before = gateway.snapshot()
    system.upstream.take()

    got = exchange(gateway.port, data)

    seen, upstream_errors = system.upstream.take()
    assert not upstream_errors, f"the upstream saw broken framing: {upstream_errors}"
    for request in seen:
        assert not request.header_names() & set(case.smuggled), f"smuggled through: {request}"
    if case.verbatim is not None and _forwarded(got):
        _check_verbatim(case, got, seen)
    else:
        _check_refused(case, got, seen)
    assert gateway.snapshot() == before, "the store changed"
    assert gateway.alive(), f"the gateway died:\n{gateway.log()[-3000:]}"
    assert gateway.healthy(), "the gateway stopped serving"


def _forwarded(got: Exchange) -> bool:
    return len(got.answers) == 1 and got.answers[0].header("x-upstream") == "recorder"


def _check_refused(case: Case, got: Exchange, seen: list[Seen]) -> None:
    assert not seen, f"reached the upstream: {seen}"
    if got.closed_silently:
        assert case.close_ok, "closed without an answer"
        return
    for mark in LEAK_MARKS:
        assert mark not in got.raw, f"{mark!r} in the answer: {got.raw[:500]!r}"
    assert len(got.answers) == 1 and not got.leftover, f"not one answer: {got.raw[:500]!r}"
    _check_error(case, got.answers[0])


def _check_error(case: Case, answer: Answer) -> None:
    body = answer.body
    assert 400 <= answer.status < 500, (answer.status, body[:500])
    if case.status is not None:
        assert answer.status == case.status, (answer.status, body[:500])
    assert (answer.header("content-type") or "").startswith("application/json"), answer.headers
    error = json.loads(body)
    assert isinstance(error, dict), error
    assert {"status", "code", "message"} <= set(error) <= {"status", "code", "message", "data"}
    assert error["status"] == "error", error
    expected_code = case.code if case.code is not None else code_for_status(answer.status)
    assert error["code"] == expected_code, error
    message = error["message"]
    assert isinstance(message, str) and message, error
    assert "\n" not in message and len(message) <= 300, f"not a one-line message: {message!r}"
    if case.message is not None:
        assert message == case.message, error
    if case.contains is not None:
        assert case.contains in message, error


def _check_verbatim(case: Case, got: Exchange, seen: list[Seen]) -> None:
    """Forwarded: exactly one request upstream, its target byte for byte what was sent."""
    assert len(seen) == 1, f"the upstream got {len(seen)} requests: {seen}"
    assert seen[0].target == case.verbatim, (
        f"the upstream got {seen[0].target!r}, the client sent {case.verbatim!r}")
    assert got.answers[0].status == 200


def test_still_serving_after_the_catalogue(system: System) -> None:
    """After everything above: alive, healthy, proxying, and the real token still works."""
    gateway = system.gateway
    assert gateway.alive()
    got = exchange(gateway.port, http("GET", "/pub/after"))
    assert [a.status for a in got.answers] == [200]
    assert got.answers[0].header("x-upstream") == "recorder"
    got = exchange(gateway.port, http("GET", "/api/v3/after",
                                      [("Authorization", f"Bearer {system.ctx.token}")]))
    assert [a.status for a in got.answers] == [200]
    seen, _ = system.upstream.take()
    identities = [dict(s.headers).get(b"X-Gateway-User-Id") for s in seen]
    assert b"victim" in identities


def test_no_unhandled_error_was_logged(system: System) -> None:
    """Nothing the catalogue sent made the gateway log a stack trace (a 5xx, or a failure
    in a background task that no answer shows)."""
    errors = [json.loads(line) for line in system.gateway.log().splitlines()
              if line.startswith("{") and '"exception"' in line]
    assert not errors, "\n".join(f"{e['message']}: {e['exception'].splitlines()[-1]}"
                                 for e in errors)
