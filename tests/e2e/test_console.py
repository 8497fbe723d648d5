"""The operator console in a real browser: headless Chromium (the distribution's package) driven by
Playwright, against the demo stack (emulator, gunicorn over HTTPS, reconciler).

The story of issue 17: sign in with the demo's key, find a drifted endpoint, change its policy,
watch the operation converge, see the request-rate chart. Plus: a reader sees no button that
would fail, a tenant-bound key sees its tenant only, the console calls nothing but the public
contract, and no Content-Security-Policy violation happens. Every page is saved as a screenshot
under var/console-screenshots/.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from playwright import sync_api as playwright_api
from playwright.sync_api import expect

from demo.stack import DemoInfo, DemoStack
from service.config import PROJECT_ROOT
from tests.api.helpers import contract_operations
from tests.e2e.conftest import free_port

SHOTS = PROJECT_ROOT / "var" / "console-screenshots"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _chromium() -> str:
    """The distribution's Chromium. CI installs it (.ci/run); without it this test fails."""
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("Chromium is missing: apt-get install -y chromium (.ci/run installs it)")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoInfo]:
    stack = DemoStack(
        tmp_path_factory.mktemp("console-demo") / "state",
        port=free_port(),
        emulator_port=free_port(),
    )
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def _api(demo: DemoInfo) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = demo.ca_path
    s.headers["Authorization"] = f"Bearer {demo.admin_key}"
    return s


def _new_key(demo: DemoInfo, role: str, tenant: str | None = None) -> str:
    body = {"name": f"console-{role}", "role": role, "tenant": tenant}
    r = _api(demo).post(f"{demo.service_url}/v1/api-keys", json=body, timeout=30)
    assert r.status_code == 201, r.text
    secret: str = r.json()["secret"]
    return secret


class Console:
    """One browser tab on the console, recording every request and any CSP violation."""

    _ROUTES = [
        (method.upper(), re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"))
        for method, template in contract_operations()
    ]

    def __init__(self, browser: Any, demo: DemoInfo, viewport: dict[str, int]) -> None:
        # The demo serves HTTPS with its own CA, which this fresh profile does not know.
        self.context = browser.new_context(viewport=viewport, ignore_https_errors=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.demo = demo
        self.requests: list[tuple[str, str]] = []
        self.problems: list[str] = []
        self.page.on("request", lambda r: self.requests.append((r.method, urlsplit(r.url).path)))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("console", self._console)
        SHOTS.mkdir(parents=True, exist_ok=True)

    def _console(self, message: Any) -> None:
        text = message.text
        if text.startswith("Failed to load resource"):
            return  # the browser's note on a 4xx answer (a 404 the console expects, a 412...)
        if "Content Security Policy" in text or message.type == "error":
            self.problems.append(f"console {message.type}: {text}")

    def sign_in(self, key: str, at: str = "", lands_on: str = "Tenants") -> None:
        """With the keyboard only: the key field has focus, Enter submits."""
        self.page.goto(self.demo.console_url + at)
        field = self.page.get_by_label("API key")
        expect(field).to_be_focused()
        self.page.keyboard.type(key)
        self.page.keyboard.press("Enter")
        expect(self.heading()).to_have_text(lands_on)

    def heading(self) -> Any:
        return self.page.locator("main h1")

    def shot(self, name: str, *, full_page: bool = True) -> None:
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)

    def main_buttons(self) -> list[str]:
        texts: list[str] = self.page.locator("main button").all_inner_texts()
        return texts

    def check_clean(self) -> None:
        """Nothing but the console's files and the public contract; no CSP or script errors."""
        assert self.problems == []
        for method, path in self.requests:
            if path.startswith("/console/"):
                continue
            assert any(m == method and p.match(path) for m, p in self._ROUTES), (method, path)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def console_factory(browser: Any, demo: DemoInfo) -> Iterator[Callable[..., Console]]:
    opened: list[Console] = []

    def open_console(viewport: dict[str, int] = DESKTOP) -> Console:
        console = Console(browser, demo, viewport)
        opened.append(console)
        return console

    yield open_console
    for console in opened:
        console.close()


def _until(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def test_a_new_user_finds_drift_enforces_a_policy_watches_it_converge_and_sees_the_charts(
    console_factory: Callable[..., Console], demo: DemoInfo
) -> None:
    c = console_factory()
    page = c.page
    c.sign_in(demo.admin_key)
    expect(page.locator("#who-label")).to_contain_text("admin")
    tenants = page.locator("#tenants tbody tr")
    expect(tenants).to_have_count(2)
    c.shot("01-tenants")

    page.locator("a[data-tenant=contoso]").click()
    expect(c.heading()).to_have_text("Compliance: Contoso")
    drifted = (
        page.locator("#offenders tbody tr")
        .filter(has_text="drifted")
        .filter(has=page.locator("td", has_text=re.compile(r"^prod$")))
    )
    expect(drifted.first).to_be_visible()
    c.shot("02-compliance")

    offender = drifted.first.locator("a[data-offender]")
    endpoint = offender.inner_text()
    offender.click()
    expect(c.heading()).to_have_text(f"Endpoint: {endpoint}")
    expect(page.locator("#compliance-state")).to_contain_text("drifted")
    app_insights = page.locator("#desired-observed tbody tr").filter(
        has_text="Application Insights"
    )
    # Desired on (from the tenant's audit policy), observed off: where each value comes from.
    expect(app_insights.locator("td")).to_have_text(["on", "tenant", "off"])
    expect(page.locator("#container-logs")).not_to_have_text("Loading…")
    c.shot("03-endpoint-drifted")

    page.locator("#edit-policy").click()
    expect(c.heading()).to_have_text(f"Policy of endpoint prod/{endpoint}")
    expect(page.locator("#policy-state")).to_contain_text("Nothing is set at this scope")
    c.shot("04-policy-editor")
    page.get_by_role("group", name="Application Insights").get_by_label("on").check()
    page.get_by_role("group", name=re.compile("^Mode")).get_by_label("enforce").check()
    page.get_by_role("button", name="Save policy").click()
    state = page.locator("#queued [data-operation-state]")
    expect(state).to_have_count(1)
    expect(state).to_have_attribute("data-operation-state", "succeeded", timeout=120_000)
    expect(page.locator("#policy-state")).to_contain_text("Set at this scope")
    c.shot("05-policy-converged")

    # Someone else changes the policy meanwhile: saving the version this tab holds is refused.
    api = _api(demo)
    path = f"/v1/tenants/contoso/workspaces/prod/endpoints/{endpoint}/policy"
    current = api.get(demo.service_url + path, timeout=30)
    api.put(
        demo.service_url + path,
        json={"app_insights": True, "mode": "audit"},
        headers={"If-Match": current.headers["ETag"]},
        timeout=30,
    ).raise_for_status()
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator("#policy-error")).to_contain_text("Someone changed this policy")

    page.get_by_role("link", name=endpoint, exact=True).click()
    expect(c.heading()).to_have_text(f"Endpoint: {endpoint}")

    def compliant() -> bool:
        if "compliant" in page.locator("#compliance-state").inner_text():
            return True
        page.reload()
        expect(c.heading()).to_have_text(f"Endpoint: {endpoint}")
        return False

    _until(compliant, f"{endpoint} to be compliant")
    expect(app_insights.locator("td")).to_have_text(["on", "endpoint", "on"])
    expect(page.locator("#endpoint-operations [data-operation-state]").first).to_have_attribute(
        "data-operation-state", "succeeded"
    )
    expect(page.get_by_role("button", name="Apply policy now")).to_be_visible()
    c.shot("06-endpoint-compliant")

    # Its telemetry starts now (App Insights was off): the page says so rather than drawing.
    page.locator("#telemetry-link").click()
    expect(c.heading()).to_have_text(f"Telemetry: {endpoint}")
    expect(page.locator("#chart-request-rate")).to_contain_text("No data in this time range")

    # An endpoint monitored all along: its request rate, response time and failure rate.
    page.goto(f"{demo.console_url}#/t/contoso/w/prod/e/churn-01")
    expect(c.heading()).to_have_text("Endpoint: churn-01")
    page.locator("#telemetry-link").click()
    expect(c.heading()).to_have_text("Telemetry: churn-01")
    rate = page.locator("#chart-request-rate svg polyline")
    expect(rate).to_have_count(1)
    assert len((rate.get_attribute("points") or "").split()) >= 12  # a day of hourly bins
    expect(page.locator("#chart-response-time svg polyline")).to_have_count(2)  # p50 and p95
    expect(page.locator("#chart-failure-rate svg polyline")).to_have_count(1)
    expect(page.locator("#chart-dependencies svg rect").first).to_be_visible()
    expect(page.locator("#traces tbody tr").first).to_be_visible()
    c.shot("07-telemetry")
    c.shot("07-telemetry-first-screen", full_page=False)  # the README's picture
    page.get_by_label("Time range").select_option("P2D")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"range=P2D"))
    expect(page.locator("#chart-request-rate svg polyline")).to_have_count(1)

    page.get_by_role("link", name="Operations").click()
    expect(c.heading()).to_have_text("Operations")
    expect(page.locator("#operations tbody tr").filter(has_text=endpoint).first).to_be_visible()
    first = page.locator("#op-refreshed").inner_text()
    expect(page.locator("#op-refreshed")).not_to_have_text(first, timeout=15_000)  # refreshes
    c.shot("08-operations")

    page.get_by_role("link", name="Log query").click()
    expect(c.heading()).to_have_text("Log query")
    page.get_by_label("Tenant").select_option("contoso")
    page.get_by_label("Workspace").select_option("prod")
    page.get_by_role("button", name="Run query").click()
    expect(page.locator("#kql-results tbody tr").first).to_be_visible(timeout=60_000)
    c.shot("09-log-query")
    c.check_clean()


def test_a_page_whose_data_arrives_after_the_user_moved_on_is_not_drawn(
    console_factory: Callable[..., Console], demo: DemoInfo
) -> None:
    # Seen in CI: a slow telemetry view finished after a click on "Operations" and replaced it.
    c = console_factory()
    page = c.page
    c.sign_in(demo.admin_key)
    held: list[Any] = []
    requests_chart = re.compile(r".*/telemetry/requests.*")

    def hold(route: Any) -> None:  # the telemetry page waits for this answer
        held.append(route)

    page.route(requests_chart, hold)
    page.goto(f"{demo.console_url}#/t/contoso/w/prod/e/churn-01/telemetry")
    deadline = time.monotonic() + 30
    while not held:
        assert time.monotonic() < deadline, "the telemetry page asked for nothing"
        page.wait_for_timeout(50)  # (lets Playwright deliver the route)
    page.get_by_role("link", name="Operations").click()
    expect(c.heading()).to_have_text("Operations")
    expect(page.locator("#operations")).to_be_visible()
    for route in held:
        route.continue_()
    page.unroute(requests_chart)
    page.wait_for_load_state("networkidle")  # the telemetry page's answers all arrived
    page.wait_for_timeout(500)
    expect(c.heading()).to_have_text("Operations")
    expect(page.locator("#operations")).to_be_visible()
    c.check_clean()


def test_the_console_is_usable_at_phone_width(
    console_factory: Callable[..., Console], demo: DemoInfo
) -> None:
    c = console_factory(PHONE)
    page = c.page
    # A portal's deep link survives the sign-in.
    c.sign_in(demo.admin_key, at="#/t/contoso/w/prod", lands_on="Workspace: Contoso ML production")
    for name, hash_, heading in (
        ("10-phone-compliance", "#/t/contoso", "Compliance: Contoso"),
        ("11-phone-endpoint", "#/t/contoso/w/prod/e/churn-01", "Endpoint: churn-01"),
        ("12-phone-telemetry", "#/t/contoso/w/prod/e/churn-01/telemetry", "Telemetry: churn-01"),
    ):
        page.goto(demo.console_url + hash_)
        expect(c.heading()).to_have_text(heading)
        # Wide tables scroll inside their own frame; the page itself never scrolls sideways.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (hash_, overflow)
        c.shot(name)
    c.check_clean()


def test_a_reader_sees_no_button_that_would_fail(
    console_factory: Callable[..., Console], demo: DemoInfo
) -> None:
    pages = (
        ("#/t/contoso", "Compliance: Contoso"),
        ("#/t/contoso/w/prod", "Workspace: Contoso ML production"),
        ("#/t/contoso/w/prod/e/churn-04", "Endpoint: churn-04"),
        ("#/t/contoso/w/prod/e/churn-04/policy", "Policy of endpoint prod/churn-04"),
        ("#/t/contoso/policy", "Policy of tenant contoso"),
    )
    operator = console_factory()
    operator.sign_in(_new_key(demo, "operator"))
    reader = console_factory()
    reader.sign_in(_new_key(demo, "reader"))
    expect(reader.page.locator("#who-label")).to_contain_text("reader")
    for hash_, heading in pages:
        for c in (operator, reader):
            c.page.goto(demo.console_url + hash_)
            expect(c.heading()).to_have_text(heading)
        # The same page offers an operator its actions, and a reader none of them.
        assert operator.main_buttons(), hash_
        assert reader.main_buttons() == [], (hash_, reader.main_buttons())
    expect(reader.page.locator("#policy-form input[type=radio]:not([disabled])")).to_have_count(0)
    expect(reader.page.locator("#policy-form")).to_contain_text("reader role")
    reader.shot("13-reader-policy")
    operator.check_clean()
    reader.check_clean()


def test_a_tenant_bound_key_sees_its_tenant_only(
    console_factory: Callable[..., Console], demo: DemoInfo
) -> None:
    c = console_factory()
    page = c.page
    c.sign_in(_new_key(demo, "operator", tenant="fabrikam"))
    expect(page.locator("#who-label")).to_contain_text("tenant fabrikam")
    expect(page.locator("#tenants tbody tr")).to_have_count(1)
    expect(page.locator("#tenants")).to_contain_text("fabrikam")
    expect(page.locator("#tenants")).not_to_contain_text("contoso")
    c.shot("14-tenant-bound")

    # Another tenant answers exactly like a missing one: the API says 404, so does the console.
    page.goto(demo.console_url + "#/t/contoso")
    expect(c.heading()).to_have_text("Not found")
    page.goto(demo.console_url + "#/kql")
    expect(c.heading()).to_have_text("Log query")
    expect(page.locator("#kql-tenant option")).to_have_text(["Fabrikam"])
    page.goto(demo.console_url + "#/operations")
    expect(c.heading()).to_have_text("Operations")
    for row in page.locator("#operations tbody tr").all():
        assert "contoso/" not in row.inner_text()
    # The key lives in this tab's sessionStorage only, never in a cookie.
    assert c.context.cookies() == []
    stored = page.evaluate("Object.keys(sessionStorage)")
    assert stored == ["amlcp.console.key"]
    page.get_by_role("button", name="Sign out").click()
    expect(c.heading()).to_have_text("Sign in")
    assert page.evaluate("sessionStorage.length") == 0
    c.check_clean()
