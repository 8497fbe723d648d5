// The console's shell: sign-in, who is signed in, the router and the page lifecycle.
import { ApiError, call, forgetKey, storeKey, storedKey } from "./api.js";
import { clear, h } from "./dom.js";
import { kqlPage } from "./kql.js";
import { operationPage, operationsPage } from "./operations.js";
import { policyPage } from "./policy.js";
import { telemetryPage } from "./telemetry.js";
import { compliancePage, endpointPage, tenantsPage, workspacePage } from "./views.js";

const main = document.getElementById("main");
const statusBox = document.getElementById("status");

/** What every page gets: who is signed in, what they may do, and page-scoped timers. */
const session = {
  me: null,
  get canOperate() {
    return !!this.me && (this.me.role === "operator" || this.me.role === "admin");
  },
  timers: [],
  every(ms, fn) {
    const id = setInterval(fn, ms);
    this.timers.push(id);
    return id;
  },
  say(message) {
    statusBox.textContent = message;
  },
  go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
};

const ROUTES = [
  [/^#\/tenants$/, () => tenantsPage],
  [/^#\/t\/([^/]+)$/, () => compliancePage],
  [/^#\/t\/([^/]+)\/policy$/, () => policyPage],
  [/^#\/t\/([^/]+)\/w\/([^/]+)$/, () => workspacePage],
  [/^#\/t\/([^/]+)\/w\/([^/]+)\/policy$/, () => policyPage],
  [/^#\/t\/([^/]+)\/w\/([^/]+)\/e\/([^/]+)$/, () => endpointPage],
  [/^#\/t\/([^/]+)\/w\/([^/]+)\/e\/([^/]+)\/policy$/, () => policyPage],
  [/^#\/t\/([^/]+)\/w\/([^/]+)\/e\/([^/]+)\/telemetry$/, () => telemetryPage],
  [/^#\/operations$/, () => operationsPage],
  [/^#\/operations\/([^/]+)$/, () => operationPage],
  [/^#\/kql$/, () => kqlPage],
];

function stopTimers() {
  for (const id of session.timers) clearInterval(id);
  session.timers = [];
}

function signInPage(message) {
  document.title = "Sign in - AML monitoring console";
  // A portal may link deep into the console: after signing in, go where the link pointed.
  const wanted = location.hash.startsWith("#/") && location.hash !== "#/signin" ? location.hash : "#/tenants";
  const input = h("input", {
    id: "api-key",
    name: "api-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "api-key-help",
  });
  const error = h("p", { id: "sign-in-error", class: "error", role: "alert" }, message || "");
  const form = h(
    "form",
    { class: "card narrow", id: "sign-in", novalidate: true },
    h("h1", { tabindex: "-1" }, "Sign in"),
    h("label", { for: "api-key" }, "API key"),
    input,
    h(
      "p",
      { id: "api-key-help", class: "help" },
      "An API key of this service (amlcp_...). It is kept in this browser tab only " +
        "(sessionStorage) and sent as the bearer token; closing the tab forgets it.",
    ),
    error,
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const secret = input.value.trim();
    if (!secret) {
      error.textContent = "Enter an API key.";
      input.focus();
      return;
    }
    error.textContent = "";
    try {
      const me = (await call("GET", "/v1/whoami", { key: secret })).body;
      storeKey(secret);
      session.me = me;
      showWho();
      session.go(wanted);
    } catch (err) {
      error.textContent =
        err instanceof ApiError && err.status === 401
          ? "This key is not valid (unknown, expired or revoked)."
          : `Sign-in failed: ${err.message}`;
      input.focus();
    }
  });
  clear(main).append(form);
  input.focus();
}

function showWho() {
  const me = session.me;
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!me) {
    nav.hidden = true;
    who.hidden = true;
    return;
  }
  document.getElementById("who-label").textContent =
    `${me.name} · ${me.role}${me.tenant ? ` · tenant ${me.tenant}` : " · all tenants"}`;
  document.getElementById("who-label").dataset.role = me.role;
  nav.hidden = false;
  who.hidden = false;
}

function signOut(message) {
  forgetKey();
  session.me = null;
  stopTimers();
  showWho();
  if (location.hash !== "#/signin") history.replaceState(null, "", "#/signin");
  signInPage(message);
}

function markNav(hash) {
  for (const a of document.querySelectorAll("[data-nav]")) {
    const here = hash.startsWith(`#/${a.dataset.nav}`) || (a.dataset.nav === "tenants" && hash.startsWith("#/t/"));
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

// Each navigation's number: a page whose data arrives after the user went elsewhere is
// dropped, not drawn over the page they are on now (a slow telemetry view finished after a
// click on "Operations" and replaced it).
let navigation = 0;

async function route() {
  const mine = ++navigation;
  const current = () => mine === navigation;
  stopTimers();
  session.say("");
  if (!storedKey()) {
    signInPage();
    return;
  }
  if (!session.me) {
    try {
      session.me = (await call("GET", "/v1/whoami")).body;
      showWho();
    } catch (err) {
      if (current()) signOut(err instanceof ApiError && err.status === 401 ? "Your key is no longer valid." : err.message);
      return;
    }
    if (!current()) return;
  }
  const hash = location.hash.split("?")[0] || "#/tenants";
  if (hash === "#/signin" || hash === "#/" || hash === "") {
    session.go("#/tenants");
    return;
  }
  markNav(hash);
  for (const [pattern, page] of ROUTES) {
    const m = hash.match(pattern);
    if (!m) continue;
    const args = m.slice(1).map(decodeURIComponent);
    const params = new URLSearchParams(location.hash.split("?")[1] || "");
    clear(main).append(h("p", { class: "loading" }, "Loading…"));
    // The page's session: a timer it asks for once the user has moved on is never started.
    const pageSession = Object.create(session);
    pageSession.every = (ms, fn) => (current() ? session.every(ms, fn) : 0);
    try {
      const view = await page()(pageSession, args, params);
      if (!current()) return;
      clear(main).append(view);
    } catch (err) {
      if (!current()) return;
      if (err instanceof ApiError && err.status === 401) {
        signOut("Your key is no longer valid.");
        return;
      }
      clear(main).append(
        h(
          "section",
          {},
          h("h1", { tabindex: "-1" }, err instanceof ApiError && err.status === 404 ? "Not found" : "Something went wrong"),
          h("p", { class: "error", role: "alert" }, err.message),
          h("p", {}, h("a", { href: "#/tenants" }, "Back to tenants")),
        ),
      );
    }
    const heading = main.querySelector("h1");
    if (heading) {
      document.title = `${heading.textContent} - AML monitoring console`;
      heading.focus();
    }
    return;
  }
  clear(main).append(h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, h("a", { href: "#/tenants" }, "Back to tenants")));
}

document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
window.addEventListener("hashchange", route);
route();
