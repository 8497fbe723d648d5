// The policy editor at each scope: If-Match with the loaded ETag, and the operations it queued.
import { ApiError, call, policyPath } from "./api.js";
import { h, table, when } from "./dom.js";
import { OPERATION_HEADERS, operationRows, watchOperations } from "./operations.js";
import { crumbs, eHash, tHash, wHash } from "./views.js";

const CHOICES = {
  app_insights: ["inherit", "on", "off"],
  model_data_collection: ["inherit", "on", "off"],
  mode: ["inherit", "enforce", "audit"],
};
const LABELS = {
  app_insights: "Application Insights",
  model_data_collection: "Model data collection (AKS only)",
  mode: "Mode (enforce applies changes; audit only reports drift)",
};

function toChoice(field, value) {
  if (value === null || value === undefined) return "inherit";
  if (field === "mode") return value;
  return value ? "on" : "off";
}

function fromChoice(field, choice) {
  if (choice === "inherit") return null;
  if (field === "mode") return choice;
  return choice === "on";
}

export async function policyPage(session, [tenant, workspace, endpoint]) {
  const path = policyPath(tenant, workspace, endpoint);
  const scope = endpoint ? "endpoint" : workspace ? "workspace" : "tenant";
  const target = endpoint ? `${workspace}/${endpoint}` : workspace || tenant;
  let policy = null;
  let etag = null;
  try {
    const r = await call("GET", path);
    policy = r.body;
    etag = r.etag;
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
  }
  const readOnly = !session.canOperate;
  const state = h("p", { class: "help", id: "policy-state" });
  const showState = () => {
    state.textContent = policy
      ? `Set at this scope; last changed ${when(policy.updated_at)} (version ${policy.etag}).`
      : "Nothing is set at this scope: every field inherits from the wider scopes.";
  };
  showState();
  const fieldsets = Object.entries(CHOICES).map(([field, choices]) =>
    h(
      "fieldset",
      { class: "choice" },
      h("legend", {}, LABELS[field]),
      choices.map((c) => {
        const id = `policy-${field}-${c}`;
        return h(
          "span",
          { class: "option" },
          h("input", {
            type: "radio",
            name: field,
            id,
            value: c,
            checked: toChoice(field, policy && policy[field]) === c,
            disabled: readOnly,
          }),
          h("label", { for: id }, c),
        );
      }),
    ),
  );
  const queued = h("div", { id: "queued", "aria-live": "polite" });
  const error = h("p", { class: "error", role: "alert", id: "policy-error" });
  const renderOps = (ops) => {
    queued.replaceChildren(
      h("h2", {}, "Operations this change queued"),
      table("Operations queued by the change", OPERATION_HEADERS, operationRows(session, ops), {
        empty: "None: no endpoint needed a change (or the mode is audit).",
      }),
    );
  };
  const form = h("form", { id: "policy-form", class: "card" }, fieldsets, error);
  const warnings = h("ul", { class: "warn", id: "policy-warnings" });
  const afterChange = (r) => {
    policy = r.body.policy;
    etag = r.etag || (policy ? policy.etag : null);
    showState();
    // Stored anyway, but worth knowing (e.g. the endpoint has not been discovered yet).
    warnings.replaceChildren(...(r.body.warnings || []).map((w) => h("li", {}, `${w.message} (${w.code})`)));
    renderOps(r.body.operations);
    if (r.body.operations.length) watchOperations(session, r.body.operations, renderOps);
    session.say(`Policy saved; ${r.body.operations.length} operation(s) queued.`);
  };
  if (!readOnly) {
    const save = h("button", { type: "submit", id: "save-policy" }, "Save policy");
    const remove = h("button", { type: "button", class: "secondary", id: "delete-policy" }, "Remove this scope's policy");
    form.append(h("div", { class: "actions" }, save, remove));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      const body = {};
      for (const field of Object.keys(CHOICES)) {
        const picked = form.querySelector(`input[name="${field}"]:checked`);
        body[field] = fromChoice(field, picked ? picked.value : "inherit");
      }
      save.disabled = true;
      try {
        afterChange(await call("PUT", path, { body, ifMatch: policy ? etag || policy.etag : undefined }));
      } catch (err) {
        error.textContent =
          err instanceof ApiError && err.status === 412
            ? "Someone changed this policy since you opened it: reload the page to see their version."
            : err.message;
      } finally {
        save.disabled = false;
      }
    });
    remove.addEventListener("click", async () => {
      error.textContent = "";
      if (!policy) {
        error.textContent = "Nothing is set at this scope.";
        return;
      }
      try {
        const r = await call("DELETE", path, { ifMatch: etag || policy.etag });
        afterChange(r);
        for (const input of form.querySelectorAll('input[value="inherit"]')) input.checked = true;
      } catch (err) {
        error.textContent = err.message;
      }
    });
  } else {
    form.append(h("p", { class: "help" }, "Your key has the reader role: you can see this policy but not change it."));
  }
  const trail = [["#/tenants", "Tenants"], [tHash(tenant), tenant]];
  if (workspace) trail.push([wHash(tenant, workspace), workspace]);
  if (endpoint) trail.push([eHash(tenant, workspace, endpoint), endpoint]);
  trail.push(["", "policy"]);
  return h(
    "section",
    {},
    crumbs(...trail),
    h("h1", { tabindex: "-1" }, `Policy of ${scope} ${target}`),
    h(
      "p",
      { class: "help" },
      "For each field the most specific scope that sets it wins (endpoint, then workspace, then tenant).",
    ),
    state,
    form,
    warnings,
    queued,
  );
}
