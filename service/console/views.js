// Tenants, compliance by workspace, a workspace's endpoints and one endpoint in detail.
import { call, endpointPath, enc, get, listAll, tenantPath, workspacePath } from "./api.js";
import { badge, h, link, table, when, yesNo } from "./dom.js";
import { operationRows, OPERATION_HEADERS, watchOperations } from "./operations.js";

export const STATES = ["compliant", "drifted", "pending", "failed", "unsupported", "unknown"];

export function tHash(t) {
  return `#/t/${enc(t)}`;
}
export function wHash(t, w) {
  return `${tHash(t)}/w/${enc(w)}`;
}
export function eHash(t, w, e) {
  return `${wHash(t, w)}/e/${enc(e)}`;
}

export function crumbs(...parts) {
  return h(
    "nav",
    { "aria-label": "Breadcrumb", class: "crumbs" },
    h(
      "ol",
      {},
      parts.map(([href, text], i) =>
        h("li", {}, i === parts.length - 1 ? h("span", { "aria-current": "page" }, text) : link(href, text)),
      ),
    ),
  );
}

/** A button for an action that needs the operator role: readers never see it. */
export function actionButton(session, label, onClick, attrs = {}) {
  if (!session.canOperate) return null;
  const button = h("button", { type: "button", ...attrs }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await onClick();
    } catch (err) {
      session.say(`${label} failed: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

export async function tenantsPage(session) {
  const tenants = await listAll("/v1/tenants");
  const rows = await Promise.all(
    tenants.map(async (t) => {
      let totals = null;
      try {
        totals = (await get(`${tenantPath(t.slug)}/compliance`)).totals;
      } catch {
        totals = null;
      }
      return [
        link(tHash(t.slug), t.display_name || t.slug, { "data-tenant": t.slug }),
        t.slug,
        totals ? String(totals.compliant ?? 0) : "-",
        totals ? String(totals.drifted ?? 0) : "-",
        totals ? String((totals.pending ?? 0) + (totals.failed ?? 0)) : "-",
      ];
    }),
  );
  return h(
    "section",
    {},
    h("h1", { tabindex: "-1" }, "Tenants"),
    h(
      "p",
      { class: "help" },
      session.me.tenant
        ? `This key is bound to tenant ${session.me.tenant}: it sees that tenant only.`
        : "Every tenant this key can see. Open one for its compliance by workspace.",
    ),
    table("Tenants and their compliance", ["tenant", "slug", "compliant", "drifted", "pending or failed"], rows, {
      id: "tenants",
      empty: "No tenants are visible to this key.",
    }),
  );
}

export async function compliancePage(session, [tenant]) {
  const [info, report, workspaces] = await Promise.all([
    get(tenantPath(tenant)),
    get(`${tenantPath(tenant)}/compliance`),
    listAll(`${tenantPath(tenant)}/workspaces`),
  ]);
  const byWs = new Map(report.workspaces.map((w) => [w.workspace, w]));
  const rows = workspaces.map((w) => {
    const entry = byWs.get(w.slug) || { counts: {}, offenders: [] };
    return [
      link(wHash(tenant, w.slug), w.display_name || w.slug),
      ...STATES.map((state) => {
        const n = entry.counts[state] || 0;
        return n && state !== "compliant"
          ? link(`${wHash(tenant, w.slug)}?state=${state}`, String(n), { "aria-label": `${n} ${state} in ${w.slug}` })
          : String(n);
      }),
    ];
  });
  const offenders = report.workspaces.flatMap((w) =>
    w.offenders.map((o) => [
      link(eHash(tenant, w.workspace, o.endpoint), o.endpoint, { "data-offender": o.endpoint }),
      w.workspace,
      badge(o.compliance),
      o.reason || "",
    ]),
  );
  const apply = actionButton(session, "Apply policy to the whole tenant now", async () => {
    const r = await call("POST", `${tenantPath(tenant)}/apply`);
    session.say(`Queued ${r.body.operations.length} operation(s).`);
    session.go("#/operations");
  });
  return h(
    "section",
    {},
    crumbs(["#/tenants", "Tenants"], [tHash(tenant), info.display_name || tenant]),
    h("h1", { tabindex: "-1" }, `Compliance: ${info.display_name || tenant}`),
    h(
      "ul",
      { class: "totals", "aria-label": "Totals" },
      STATES.map((s) => h("li", { class: `total total-${s}` }, h("span", { class: "n" }, String(report.totals[s] || 0)), " ", s)),
    ),
    h("p", { class: "help" }, `Evaluated ${when(report.evaluated_at)}.`),
    table("Endpoints by compliance state, per workspace", ["workspace", ...STATES], rows, {
      id: "compliance",
      empty: "No workspaces are registered for this tenant.",
    }),
    h("h2", {}, "Offenders"),
    table("Endpoints that are not compliant", ["endpoint", "workspace", "state", "reason"], offenders, {
      id: "offenders",
      empty: "Every endpoint is compliant.",
    }),
    h(
      "div",
      { class: "actions" },
      link(`${tHash(tenant)}/policy`, session.canOperate ? "Edit the tenant policy" : "View the tenant policy", { class: "button-link" }),
      apply,
    ),
  );
}

export async function workspacePage(session, [tenant, workspace], params) {
  const [ws, endpoints] = await Promise.all([
    get(workspacePath(tenant, workspace)),
    listAll(`${workspacePath(tenant, workspace)}/endpoints`),
  ]);
  const wanted = params.get("state");
  const select = h(
    "select",
    { id: "state-filter" },
    h("option", { value: "" }, "every state"),
    STATES.map((s) => h("option", { value: s, selected: s === wanted }, s)),
  );
  select.addEventListener("change", () => {
    session.go(`${wHash(tenant, workspace)}${select.value ? `?state=${select.value}` : ""}`);
  });
  const shown = endpoints.filter((e) => !wanted || (e.monitoring && e.monitoring.compliance) === wanted);
  const rows = shown.map((e) => [
    link(eHash(tenant, workspace, e.name), e.name, { "data-endpoint": e.name }),
    e.kind || e.compute_type,
    e.state || "-",
    yesNo(e.app_insights_enabled),
    e.monitoring ? yesNo(e.monitoring.desired.app_insights.value) : "-",
    badge(e.monitoring ? e.monitoring.compliance : "unknown"),
  ]);
  const sync = actionButton(session, "Discover now", async () => {
    const r = await call("POST", `${workspacePath(tenant, workspace)}/sync`);
    session.say(`Discovery done: ${JSON.stringify(r.body).slice(0, 200)}`);
    session.go(location.hash);
  });
  const apply = actionButton(session, "Apply policy to drifted endpoints", async () => {
    const r = await call("POST", `${workspacePath(tenant, workspace)}/apply`);
    session.say(`Queued ${r.body.operations.length} operation(s).`);
  });
  return h(
    "section",
    {},
    crumbs(["#/tenants", "Tenants"], [tHash(tenant), tenant], [wHash(tenant, workspace), ws.display_name || workspace]),
    h("h1", { tabindex: "-1" }, `Workspace: ${ws.display_name || workspace}`),
    h("p", { class: "help" }, `${ws.workspace_name} in ${ws.resource_group} (subscription ${ws.subscription_id}).`),
    h("div", { class: "filters" }, h("label", { for: "state-filter" }, "Show endpoints in "), select),
    table(
      wanted ? `Endpoints that are ${wanted}` : "Endpoints",
      ["endpoint", "kind", "Azure state", "App Insights observed", "App Insights desired", "compliance"],
      rows,
      { id: "endpoints", empty: wanted ? `No endpoint is ${wanted}.` : "Discovery has found no endpoints yet." },
    ),
    h(
      "div",
      { class: "actions" },
      link(`${wHash(tenant, workspace)}/policy`, session.canOperate ? "Edit the workspace policy" : "View the workspace policy", { class: "button-link" }),
      sync,
      apply,
    ),
  );
}

export async function endpointPage(session, [tenant, workspace, name]) {
  const path = endpointPath(tenant, workspace, name);
  const [endpoint, operations] = await Promise.all([
    get(path),
    listAll("/v1/operations", { tenant }, 400).catch(() => []),
  ]);
  const mine = operations.filter((o) => o.workspace === workspace && o.endpoint === name).slice(0, 20);
  const m = endpoint.monitoring || { desired: {}, compliance: "unknown", reason: null };
  const field = (key, observed, label) => {
    const d = m.desired[key] || { value: null, source: "default" };
    const shown = key === "mode" ? d.value || "-" : yesNo(d.value);
    return [label, shown, h("span", { class: `source source-${d.source}` }, d.source), observed];
  };
  const desiredTable = table(
    "Desired (effective policy, with the scope each value comes from) against observed",
    ["setting", "desired", "comes from", "observed in Azure"],
    [
      field("app_insights", yesNo(endpoint.app_insights_enabled), "Application Insights"),
      field("model_data_collection", yesNo(endpoint.data_collection_enabled), "Model data collection"),
      field("mode", "-", "Mode"),
    ],
    { id: "desired-observed" },
  );
  const logs = h("pre", { class: "logs", id: "container-logs", tabindex: "0", "aria-label": "Container logs" }, "Loading…");
  get(`${path}/container-logs`, { tail: 50 })
    .then((r) => {
      logs.textContent = r.content || "(empty)";
    })
    .catch((err) => {
      logs.textContent = `Container logs are not available: ${err.message}`;
    });
  const opsBox = h("div", { id: "endpoint-operations" });
  const renderOps = (ops) => {
    opsBox.replaceChildren(
      table("Operations on this endpoint, oldest first", OPERATION_HEADERS, operationRows(session, ops), {
        empty: "No operations have touched this endpoint.",
      }),
    );
  };
  renderOps(mine);
  const active = mine.filter((o) => o.state === "queued" || o.state === "running");
  if (active.length) watchOperations(session, mine, renderOps);
  const apply = actionButton(session, "Apply policy now", async () => {
    const r = await call("POST", `${path}/apply`);
    session.say(r.body.operations.length ? `Queued ${r.body.operations.length} operation(s).` : "Nothing to change.");
    if (r.body.operations.length) {
      const all = [...r.body.operations, ...mine];
      renderOps(all);
      watchOperations(session, all, renderOps);
    }
  });
  return h(
    "section",
    {},
    crumbs(["#/tenants", "Tenants"], [tHash(tenant), tenant], [wHash(tenant, workspace), workspace], [eHash(tenant, workspace, name), name]),
    h("h1", { tabindex: "-1" }, `Endpoint: ${name}`),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Compliance"),
      h("dd", { id: "compliance-state" }, badge(m.compliance), m.reason ? ` ${m.reason}` : ""),
      h("dt", {}, "Kind"),
      h("dd", {}, endpoint.kind || endpoint.compute_type),
      h("dt", {}, "Azure state"),
      h("dd", {}, endpoint.state || "-"),
      h("dt", {}, "Observed"),
      h("dd", {}, when(endpoint.observed_at)),
      h("dt", {}, "Scoring URI"),
      h("dd", { class: "wrap" }, endpoint.scoring_uri || "-"),
    ),
    desiredTable,
    h(
      "div",
      { class: "actions" },
      link(`${eHash(tenant, workspace, name)}/policy`, session.canOperate ? "Edit this endpoint's policy" : "View this endpoint's policy", {
        class: "button-link",
        id: "edit-policy",
      }),
      link(`${eHash(tenant, workspace, name)}/telemetry`, "Telemetry charts", { class: "button-link", id: "telemetry-link" }),
      apply,
    ),
    h("h2", {}, "Operations"),
    opsBox,
    h("h2", {}, "Container logs (last 50 lines)"),
    logs,
  );
}

