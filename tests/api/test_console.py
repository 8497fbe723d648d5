"""The console's static files: served by the service itself, with a strict CSP, no inline code.

The browser test (tests/e2e/test_console.py) runs the console; these check what the server sends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

import pytest
from flask import Flask

from service.api.console import ASSETS
from tests.api.helpers import contract_operations

_IMPORT = re.compile(r'^\s*import\s[^;]*?from\s+"(\./[^"]+)";', re.MULTILINE | re.DOTALL)
# Every "/v1/..." literal or template the modules send requests to, up to the first ${ or quote.
_API_LITERAL = re.compile(r'[`"](/v1/[A-Za-z0-9_/-]*)')


@dataclass(frozen=True)
class Got:
    status_code: int
    headers: dict[str, str]
    mimetype: str
    body: bytes

    def text(self) -> str:
        return self.body.decode()


class Client:
    """A test client that reads and closes every response (static files are open files)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def get(self, path: str) -> Got:
        with self.client.get(path) as r:
            return Got(r.status_code, dict(r.headers), r.mimetype or "", r.get_data())


@pytest.fixture
def client(app: Flask) -> Client:
    return Client(app.test_client())


class _Page(HTMLParser):
    """What the console's HTML loads, and anything that would need 'unsafe-inline'."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, _value in attrs:
            if name == "style" or name.startswith("on"):
                self.inline.append(f"<{tag} {name}=...>")
        if tag == "script":
            if named.get("src"):
                self.assets.append(named["src"] or "")
            else:
                self.inline.append("<script> without src")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "link" and named.get("rel") == "stylesheet":
            self.assets.append(named.get("href") or "")


def _modules() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in ASSETS.glob("*.js")}


def test_the_console_page_has_a_strict_csp_and_security_headers(client: Client) -> None:
    page = client.get("/console/")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    csp = {
        d.split()[0]: d.split()[1:]
        for d in page.headers["Content-Security-Policy"].split(";")
        if d.strip()
    }
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert not any("unsafe" in v for values in csp.values() for v in values)
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "Set-Cookie" not in page.headers


def test_the_page_loads_only_its_own_files_and_has_no_inline_code(client: Client) -> None:
    parser = _Page()
    parser.feed(client.get("/console/").text())
    assert parser.inline == []
    assert sorted(parser.assets) == ["app.js", "console.css"]
    for name in parser.assets:
        asset = client.get(f"/console/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/console/app.js").mimetype in ("text/javascript", "application/javascript")
    assert client.get("/console/console.css").mimetype == "text/css"


def test_every_module_import_resolves_and_nothing_comes_from_another_origin(
    client: Client,
) -> None:
    modules = _modules()
    assert "app.js" in modules
    for name, source in modules.items():
        for target in _IMPORT.findall(source):
            assert target[2:] in modules, f"{name} imports {target}, which is not shipped"
            assert client.get(f"/console/{target[2:]}").status_code == 200
        # No CDN, no other origin, no eval, no HTML injection: text only becomes text nodes.
        offsite = source.replace('"http://www.w3.org/2000/svg"', "")  # a namespace, not a URL
        assert "http://" not in offsite, name
        assert "https://" not in offsite, name
        for forbidden in (
            "innerHTML",
            "document.cookie",
            "localStorage",
            "outerHTML",
            "insertAdjacentHTML",
            "eval(",
            "document.write",
        ):
            assert forbidden not in source, f"{name} uses {forbidden}"
    css = (ASSETS / "console.css").read_text(encoding="utf-8")
    assert "@import" not in css
    assert "url(" not in css


def test_the_console_calls_only_routes_of_the_public_contract() -> None:
    templates = {template for _method, template in contract_operations()}
    # Fill each template's parameters with a wildcard: a literal must be a prefix of some route.
    patterns = [re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]*", t)) for t in templates]
    found = set()
    for source in _modules().values():
        for literal in _API_LITERAL.findall(source):
            found.add(literal)
            assert any(
                p.match(literal) or t.startswith(literal)
                for p, t in zip(patterns, templates, strict=True)
            ), literal
    assert {"/v1/whoami", "/v1/tenants", "/v1/operations"} <= found


def test_console_redirects_to_its_page_and_unknown_or_escaping_paths_are_404(
    client: Client,
) -> None:
    root = client.get("/console")
    assert root.status_code == 308
    assert root.headers["Location"].endswith("/console/")
    for path in (
        "/console/missing.js",
        "/console/../app.py",
        "/console/%2e%2e/api/console.py",
        "/console/..%2fapi%2fconsole.py",
        "/console/etc/passwd",
        "/console/index.html/..",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"import" not in response.body


def test_console_files_need_no_key_but_its_api_calls_do(client: Client) -> None:
    assert client.get("/console/api.js").status_code == 200
    assert client.get("/v1/whoami").status_code == 401
