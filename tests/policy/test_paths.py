"""normalize_path / normalize_host: what is refused, what is made canonical."""

from __future__ import annotations

import pytest

from gateway.policy import PathOptions, UnsafePath, normalize_host, normalize_path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/api/v3/sessions", "/api/v3/sessions"),
        ("/api/v3/sessions/", "/api/v3/sessions/"),  # trailing slash kept for the upstream
        ("//a///b", "/a/b"),
        ("//", "/"),
        ("/a//", "/a/"),
        ("/ap%69/x", "/api/x"),  # unreserved characters are decoded...
        ("/%41%7a%30%2D%2e%5F%7E", "/Az0-._~"),
        ("/a%3bb", "/a%3Bb"),  # ...other escapes keep their meaning, hex uppercased
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/café", "/caf%C3%A9"),  # raw non-ASCII -> UTF-8 escapes
        ("/a b|c", "/a%20b%7Cc"),  # characters not allowed raw get escaped
        ("/a%25b", "/a%25b"),  # an escaped "%" stays escaped
        ("/users/a:b@c=e", "/users/a:b@c=e"),
        ("/.well-known/jwks.json", "/.well-known/jwks.json"),  # dots inside a segment are fine
        ("/a/.b/..c", "/a/.b/..c"),
        ("/socket.io/", "/socket.io/"),
    ],
)
def test_normalize_path_canonical(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected
    assert normalize_path(expected) == expected  # idempotent


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "start with /"),
        ("api/x", "start with /"),
        ("*", "start with /"),
        ("/a\x00b", "NUL"),
        ("/a%00b", "NUL"),
        ("/a/../b", "dot segment"),
        ("/a/./b", "dot segment"),
        ("/..", "dot segment"),
        ("/a/.", "dot segment"),
        ("/a/%2e%2e/b", "dot segment"),
        ("/a/%2E%2E/b", "dot segment"),
        ("/a/%2E./b", "dot segment"),
        ("/a/.%2e/b", "dot segment"),
        ("/a/%2e/b", "dot segment"),
        ("/a/..;x=1/b", "dot segment|';'"),
        ("/users/a;d=e", "';'"),  # servlet stacks drop `;...`: `/admin;x` is `/admin`
        ("/api/v3/audit-logs;x", "';'"),
        ("/a/...", "ending in '.'"),  # some servers drop a segment's trailing dots
        ("/api/v3/audit-logs.", "ending in '.'"),
        ("/api/v3/audit-logs%2e", "ending in '.'"),
        ("/api/v3/audit-logs./x", "ending in '.'"),
        ("/a%2fb", "encoded slash"),
        ("/a%2Fb", "encoded slash"),
        ("/a%5cb", "encoded slash or backslash"),
        ("/a\\b", "backslash"),
        ("/a%252e%252e/b", "double-encoded"),
        ("/a%252fb", "double-encoded"),
        ("/a\nb", "control"),
        ("/a%0db", "control"),
        ("/a%7f", "control"),
        ("/a\tb", "control"),
        ("/a%", "malformed"),
        ("/a%2", "malformed"),
        ("/a%zz", "malformed"),
        ("/a?b=1", "query"),
        ("/a#frag", "fragment"),
    ],
)
def test_normalize_path_refuses(raw: str, reason: str) -> None:
    with pytest.raises(UnsafePath, match=reason):
        normalize_path(raw)


@pytest.mark.parametrize(
    ("raw", "options", "expected"),
    [
        ("/users/a;d=e", PathOptions(semicolons=True), "/users/a;d=e"),
        ("/a/...", PathOptions(trailing_dots=True), "/a/..."),
        ("/a/b./c", PathOptions(trailing_dots=True), "/a/b./c"),
        ("/a%2fb", PathOptions(encoded_slashes=True), "/a%2Fb"),  # kept encoded
        ("/a%5Cb", PathOptions(encoded_slashes=True), "/a%5Cb"),
    ],
)
def test_path_options_let_spellings_through(raw: str, options: PathOptions,
                                            expected: str) -> None:
    assert normalize_path(raw, options) == expected


def test_options_never_admit_dot_segments() -> None:
    lax = PathOptions(semicolons=True, trailing_dots=True, encoded_slashes=True)
    for raw in ("/a/../b", "/a/%2e%2e/b", "/a/..;x/b", "/a/./b"):
        with pytest.raises(UnsafePath, match="dot segment"):
            normalize_path(raw, lax)


def test_unsafe_path_is_a_value_error() -> None:
    assert issubclass(UnsafePath, ValueError)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("api.eu.amity.co", "api.eu.amity.co"),
        ("API.EU.Amity.CO", "api.eu.amity.co"),
        ("api.eu.amity.co:8443", "api.eu.amity.co"),
        ("api.eu.amity.co.", "api.eu.amity.co"),
        ("127.0.0.1:8080", "127.0.0.1"),
        ("[::1]:8443", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[FE80::1]", "fe80::1"),
    ],
)
def test_normalize_host(host: str, expected: str) -> None:
    assert normalize_host(host) == expected
