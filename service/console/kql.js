// A KQL box with a results table: POST .../logs/query with the tenant's credential.
import { call, listAll, tenantPath, workspacePath } from "./api.js";
import { h, table } from "./dom.js";

const MAX_ROWS = 500;

function cell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export async function kqlPage(session, _args, params) {
  const tenants = await listAll("/v1/tenants");
  const tenantSelect = h("select", { id: "kql-tenant", required: true });
  const wsSelect = h("select", { id: "kql-workspace", required: true });
  for (const t of tenants) {
    tenantSelect.append(h("option", { value: t.slug, selected: t.slug === params.get("tenant") }, t.display_name || t.slug));
  }
  const loadWorkspaces = async () => {
    wsSelect.replaceChildren();
    if (!tenantSelect.value) return;
    const workspaces = await listAll(`${tenantPath(tenantSelect.value)}/workspaces`);
    for (const w of workspaces) {
      wsSelect.append(h("option", { value: w.slug, selected: w.slug === params.get("workspace") }, w.display_name || w.slug));
    }
  };
  tenantSelect.addEventListener("change", () => loadWorkspaces().catch((e) => session.say(e.message)));
  await loadWorkspaces();
  const text = h(
    "textarea",
    { id: "kql-text", rows: "6", spellcheck: "false", required: true, "aria-describedby": "kql-help" },
  );
  text.value = params.get("q") || "AppRequests\n| summarize requests = count(), failures = countif(Success == false) by AppRoleName\n| order by requests desc\n| take 10";
  const span = h(
    "select",
    { id: "kql-timespan" },
    [["PT1H", "last hour"], ["P1D", "last 24 hours"], ["P2D", "last 2 days"], ["P7D", "last 7 days"], ["", "none (the query decides)"]].map(
      ([v, l]) => h("option", { value: v, selected: v === "P1D" }, l),
    ),
  );
  const source = h(
    "select",
    { id: "kql-source" },
    h("option", { value: "" }, "default"),
    h("option", { value: "log_analytics" }, "Log Analytics (App* tables)"),
    h("option", { value: "app_insights" }, "App Insights (classic tables)"),
  );
  const results = h("div", { id: "kql-results", "aria-live": "polite" });
  const run = h("button", { type: "submit", id: "kql-run" }, "Run query");
  const form = h(
    "form",
    { class: "card", id: "kql-form" },
    h("div", { class: "grid2" },
      h("div", {}, h("label", { for: "kql-tenant" }, "Tenant"), tenantSelect),
      h("div", {}, h("label", { for: "kql-workspace" }, "Workspace"), wsSelect),
      h("div", {}, h("label", { for: "kql-timespan" }, "Time range"), span),
      h("div", {}, h("label", { for: "kql-source" }, "Source"), source),
    ),
    h("label", { for: "kql-text" }, "KQL query"),
    text,
    h("p", { id: "kql-help", class: "help" }, "Runs with the tenant's Azure credential; every query is audited. Ctrl+Enter runs it."),
    h("div", { class: "actions" }, run),
  );
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!tenantSelect.value || !wsSelect.value) {
      results.replaceChildren(h("p", { class: "error", role: "alert" }, "Pick a tenant and a workspace."));
      return;
    }
    run.disabled = true;
    results.replaceChildren(h("p", { class: "loading" }, "Running…"));
    const started = performance.now();
    try {
      const body = { query: text.value };
      body.timespan = span.value || null;
      if (source.value) body.source = source.value;
      const r = (await call("POST", `${workspacePath(tenantSelect.value, wsSelect.value)}/logs/query`, { body })).body;
      const parts = [
        h("p", { class: "help", id: "kql-summary" },
          `${r.status === "partial" ? "Partial result" : "Done"} in ${Math.round(performance.now() - started)} ms ` +
          `(${r.source}, served from ${r.served_from}); ${r.tables.map((t) => `${t.name}: ${t.rows.length} rows`).join(", ")}.`),
      ];
      if (r.error) parts.push(h("pre", { class: "warn" }, JSON.stringify(r.error, null, 2)));
      for (const t of r.tables) {
        parts.push(
          table(
            `${t.name}${t.rows.length > MAX_ROWS ? ` (first ${MAX_ROWS} of ${t.rows.length} rows)` : ""}`,
            t.columns.map((c) => `${c.name} (${c.type})`),
            t.rows.slice(0, MAX_ROWS).map((row) => row.map(cell)),
            { empty: `${t.name}: no rows.` },
          ),
        );
      }
      results.replaceChildren(...parts);
    } catch (err) {
      const detail = err.problem && err.problem.errors ? ` ${err.problem.errors.map((e) => `${e.field}: ${e.message}`).join("; ")}` : "";
      results.replaceChildren(h("p", { class: "error", role: "alert" }, `${err.message}${detail}`));
    } finally {
      run.disabled = false;
    }
  });
  return h(
    "section",
    {},
    h("h1", { tabindex: "-1" }, "Log query"),
    tenants.length ? form : h("p", { class: "empty" }, "No tenants are visible to this key."),
    results,
  );
}
