// Operations: the list that refreshes itself, one operation with its attempts, and watching a few.
import { call, enc, get } from "./api.js";
import { badge, h, link, table, when } from "./dom.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const REFRESH_MS = 2000;

export const OPERATION_HEADERS = ["operation", "endpoint", "change", "state", "attempts", "cause", "updated", "last error", ""];

function endpointHash(op) {
  return `#/t/${enc(op.tenant)}/w/${enc(op.workspace)}/e/${enc(op.endpoint)}`;
}

function change(op) {
  return Object.entries(op.desired || {})
    .map(([k, v]) => `${k} ${v ? "on" : "off"}`)
    .join(", ");
}

function attempts(op) {
  // A count, or (newer servers) the list of attempts; tolerate neither being there.
  const n = Array.isArray(op.attempts) ? op.attempts.length : op.attempts;
  if (n === undefined || n === null) return "-";
  return op.max_attempts ? `${n} of ${op.max_attempts}` : String(n);
}

export function operationRows(session, ops, onChange) {
  return ops.map((op) => {
    let cancel = null;
    if (session.canOperate && !TERMINAL.has(op.state)) {
      cancel = h("button", { type: "button", class: "secondary small", "aria-label": `Cancel operation ${op.id.slice(0, 8)} on ${op.endpoint}` }, "Cancel");
      cancel.addEventListener("click", async () => {
        cancel.disabled = true;
        try {
          await call("POST", `/v1/operations/${enc(op.id)}/cancel`, { ifMatch: op.etag });
          session.say(`Operation ${op.id.slice(0, 8)} cancelled.`);
          if (onChange) onChange();
        } catch (err) {
          session.say(`Cancel failed: ${err.message}`);
          cancel.disabled = false;
        }
      });
    }
    return [
      link(`#/operations/${enc(op.id)}`, op.id.slice(0, 8), { "aria-label": `operation ${op.id}` }),
      link(endpointHash(op), `${op.tenant}/${op.workspace}/${op.endpoint}`),
      change(op),
      h("span", { "data-operation-state": op.state, "data-operation-id": op.id }, badge(op.state)),
      attempts(op),
      op.cause,
      when(op.updated_at),
      op.last_error || "",
      cancel,
    ];
  });
}

/** Poll the given operations until each has finished; `render(ops)` after every round. */
export function watchOperations(session, ops, render) {
  let current = ops.slice();
  const id = session.every(REFRESH_MS, async () => {
    if (document.hidden) return;
    const open = current.filter((o) => !TERMINAL.has(o.state));
    if (!open.length) {
      clearInterval(id);
      return;
    }
    const fresh = await Promise.all(open.map((o) => get(`/v1/operations/${enc(o.id)}`).catch(() => o)));
    const byId = new Map(fresh.map((o) => [o.id, o]));
    current = current.map((o) => byId.get(o.id) || o);
    render(current);
    if (current.every((o) => TERMINAL.has(o.state))) {
      session.say(`Every operation finished: ${current.map((o) => `${o.endpoint} ${o.state}`).join(", ")}.`);
      clearInterval(id);
    }
  });
}

export async function operationsPage(session, _args, params) {
  const stateSelect = h(
    "select",
    { id: "op-state" },
    h("option", { value: "" }, "any state"),
    ["queued", "running", "succeeded", "failed", "cancelled"].map((s) => h("option", { value: s, selected: params.get("state") === s }, s)),
  );
  const auto = h("input", { type: "checkbox", id: "op-auto", checked: true });
  const stamp = h("span", { class: "help", id: "op-refreshed" });
  const box = h("div", { id: "operations" }, h("p", { class: "loading" }, "Loading…"));
  const refresh = async () => {
    const page = await get("/v1/operations", { limit: 100, state: stateSelect.value || undefined });
    box.replaceChildren(
      table("Operations, oldest first", OPERATION_HEADERS, operationRows(session, page.items, refresh), {
        empty: "No operations.",
      }),
    );
    stamp.textContent = `Refreshed ${new Date().toLocaleTimeString()}.`;
  };
  stateSelect.addEventListener("change", () => refresh().catch((e) => session.say(e.message)));
  await refresh();
  session.every(REFRESH_MS, () => {
    if (auto.checked && !document.hidden) refresh().catch((e) => session.say(`Refresh failed: ${e.message}`));
  });
  return h(
    "section",
    {},
    h("h1", { tabindex: "-1" }, "Operations"),
    h(
      "div",
      { class: "filters" },
      h("label", { for: "op-state" }, "State "),
      stateSelect,
      h("span", { class: "check" }, auto, h("label", { for: "op-auto" }, "Refresh every 2 s")),
      stamp,
    ),
    box,
  );
}

export async function operationPage(session, [id]) {
  const box = h("div", { id: "operation" });
  const render = (op) => {
    const rows = [
      ["State", badge(op.state)],
      ["Endpoint", link(endpointHash(op), `${op.tenant}/${op.workspace}/${op.endpoint}`)],
      ["Change", change(op)],
      ["Kind", op.kind],
      ["Cause", op.cause],
      ["Attempts", attempts(op)],
      ["Not before", when(op.not_before)],
      ["Azure operation", op.azure_operation_id || "-"],
      ["Last error", op.last_error || "-"],
      ["Created", `${when(op.created_at)} by ${op.created_by}`],
      ["Finished", when(op.finished_at)],
    ];
    const parts = [
      h("dl", { class: "facts" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    ];
    // Each attempt's record, when the API gives one (older servers give only a count).
    const history = Array.isArray(op.attempts) ? op.attempts : Array.isArray(op.attempt_history) ? op.attempt_history : null;
    if (history) {
      parts.push(
        table(
          "Attempts",
          ["#", "started", "finished", "outcome", "error"],
          history.map((a, i) => [
            String(a.number ?? i + 1),
            when(a.started_at),
            when(a.finished_at),
            a.outcome || a.state || "-",
            a.error || a.last_error || (a.error_code ? `${a.error_code}` : ""),
          ]),
          { id: "attempts", empty: "No attempt yet." },
        ),
      );
    }
    if (session.canOperate && !TERMINAL.has(op.state)) {
      const cancel = h("button", { type: "button", class: "secondary" }, "Cancel this operation");
      cancel.addEventListener("click", async () => {
        try {
          render((await call("POST", `/v1/operations/${enc(op.id)}/cancel`, { ifMatch: op.etag })).body);
        } catch (err) {
          session.say(`Cancel failed: ${err.message}`);
        }
      });
      parts.push(h("div", { class: "actions" }, cancel));
    }
    box.replaceChildren(...parts);
    return op;
  };
  let op = render(await get(`/v1/operations/${enc(id)}`));
  const timer = session.every(REFRESH_MS, async () => {
    if (TERMINAL.has(op.state)) {
      clearInterval(timer);
      return;
    }
    if (!document.hidden) op = render(await get(`/v1/operations/${enc(id)}`));
  });
  return h(
    "section",
    {},
    h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, h("ol", {}, h("li", {}, link("#/operations", "Operations")), h("li", {}, h("span", { "aria-current": "page" }, id.slice(0, 8))))),
    h("h1", { tabindex: "-1" }, `Operation ${id.slice(0, 8)}`),
    box,
  );
}
