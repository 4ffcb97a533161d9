"""The console's files: content types, the Content-Security-Policy, no shadowed API.

Plain HTTP requests: these run without a browser.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from tests.browser.conftest import Gateway

CSP_PARTS = ("default-src 'self'", "script-src 'self'", "style-src 'self'",
             "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'")


def _get(url: str, method: str = "GET", data: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_files_are_served_with_a_strict_content_security_policy(gateway: Gateway) -> None:
    for path, content_type in (("/console/", "text/html"), ("/console", "text/html"),
                               ("/console/app.js", "text/javascript"),
                               ("/console/console.css", "text/css")):
        status, headers, body = _get(gateway.url + path)
        assert status == 200, path
        assert headers["Content-Type"].startswith(content_type), (path, headers)
        for part in CSP_PARTS:
            assert part in headers["Content-Security-Policy"], (path, part)
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, index = _get(gateway.url + "/console/")
    # No inline script, no inline style, nothing from another origin.
    assert b"<script>" not in index and b"style=" not in index and b"//cdn" not in index
    assert b'<script type="module" src="/console/app.js">' in index
    # Revalidation is cheap: an ETag, and 304 when it still matches.
    assert _get(gateway.url + "/console/app.js",
                headers={"If-None-Match": headers["ETag"]})[0] == 200
    etag = _get(gateway.url + "/console/app.js")[1]["ETag"]
    assert _get(gateway.url + "/console/app.js", headers={"If-None-Match": etag})[0] == 304
    # Unknown files and paths out of the folder are the contract's JSON 404.
    for path in ("/console/nope.js", "/console/..%2Fapp.py", "/console/v1"):
        status, headers, body = _get(gateway.url + path)
        assert status in (400, 404) and headers["Content-Type"].startswith("application/json")
    # The API under /console is not shadowed by the static files.
    status, _, body = _get(gateway.url + "/console/v1/login", "POST", b"{}",
                           {"x-api-key": "wrong", "Content-Type": "application/json"})
    assert status == 401 and b'"Unauthorized"' in body
