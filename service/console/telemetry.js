// The source document's views of one endpoint, as charts, with a time-range picker.
import { endpointPath, get } from "./api.js";
import { barChart, formatNumber, lineChart } from "./charts.js";
import { h, table, when } from "./dom.js";
import { crumbs, eHash, tHash, wHash } from "./views.js";

// Time range -> the bin size that gives a readable number of points (and how to say it).
const RANGES = [
  ["PT1H", "last hour", "PT5M", "5 minutes"],
  ["PT6H", "last 6 hours", "PT15M", "15 minutes"],
  ["P1D", "last 24 hours", "PT1H", "hour"],
  ["P2D", "last 2 days", "PT1H", "hour"],
  ["P7D", "last 7 days", "PT6H", "6 hours"],
];

const IO_CHARS = 240;

function compact(value) {
  if (value === null || value === undefined) return "-";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > IO_CHARS ? `${text.slice(0, IO_CHARS)}…` : text;
}

/** input / output of a trace: the parsed JSON score.py printed, else its custom dimensions. */
function ioOf(trace) {
  let dims = trace.custom_dimensions;
  if (typeof dims === "string") {
    try {
      dims = JSON.parse(dims);
    } catch {
      /* leave as text */
    }
  }
  const data = trace.data && typeof trace.data === "object" ? trace.data : dims && typeof dims === "object" ? dims : {};
  const pick = (...names) => {
    for (const n of names) if (data[n] !== undefined) return data[n];
    return undefined;
  };
  return {
    input: pick("input", "Input", "inputs", "request"),
    output: pick("output", "Output", "outputs", "prediction", "response"),
    dims,
  };
}

export async function telemetryPage(session, [tenant, workspace, name], params) {
  const range = RANGES.find((r) => r[0] === params.get("range")) || RANGES[2];
  const source = params.get("source") || "";
  const path = endpointPath(tenant, workspace, name);
  const picker = h(
    "select",
    { id: "time-range" },
    RANGES.map(([value, label]) => h("option", { value, selected: value === range[0] }, label)),
  );
  const sourcePicker = h(
    "select",
    { id: "source" },
    h("option", { value: "" }, "default (Log Analytics when registered)"),
    h("option", { value: "log_analytics", selected: source === "log_analytics" }, "Log Analytics (App* tables)"),
    h("option", { value: "app_insights", selected: source === "app_insights" }, "App Insights (classic tables)"),
  );
  const form = h(
    "form",
    { class: "filters", id: "telemetry-form" },
    h("label", { for: "time-range" }, "Time range "),
    picker,
    h("label", { for: "source" }, "Source "),
    sourcePicker,
    h("button", { type: "submit" }, "Show"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = new URLSearchParams({ range: picker.value });
    if (sourcePicker.value) q.set("source", sourcePicker.value);
    session.go(`${eHash(tenant, workspace, name)}/telemetry?${q}`);
  });
  const query = { timespan: range[0], source: source || undefined };
  const settle = (p) => p.then((v) => ({ ok: v }), (err) => ({ err }));
  const [requests, deps, exceptions, traces] = await Promise.all([
    settle(get(`${path}/telemetry/requests`, { ...query, interval: range[2] })),
    settle(get(`${path}/telemetry/dependencies`, query)),
    settle(get(`${path}/telemetry/exceptions`, query)),
    settle(get(`${path}/telemetry/traces`, { ...query, contains: "input", limit: 20 })),
  ]);
  const failed = (what, r) => h("p", { class: "error", role: "alert" }, `${what}: ${r.err.message}`);
  const partial = (r) => (r.ok && r.ok.status === "partial" ? h("p", { class: "warn" }, "Partial result: Azure returned part of the data.") : null);

  const charts = h("div", { class: "charts" });
  if (requests.err) charts.append(failed("Requests", requests));
  else {
    const items = requests.ok.items;
    const t = (i) => Date.parse(i.bin_start);
    charts.append(
      partial(requests) || "",
      lineChart({
        id: "chart-request-rate",
        title: `Request rate (requests per ${range[3]})`,
        unit: "",
        description: `Requests per ${range[3]}.`,
        series: [{ name: `requests per ${range[3]}`, cls: "s0", points: items.map((i) => [t(i), i.requests]) }],
      }),
      lineChart({
        id: "chart-response-time",
        title: "Response time",
        unit: "ms",
        description: "p50 and p95 duration per bin.",
        series: [
          { name: "p50", cls: "s1", points: items.map((i) => [t(i), i.p50_duration_ms ?? i.avg_duration_ms]) },
          { name: "p95", cls: "s2", points: items.map((i) => [t(i), i.p95_duration_ms]) },
        ],
      }),
      lineChart({
        id: "chart-failure-rate",
        title: "Failure rate",
        unit: "%",
        description: "Share of failed requests per bin.",
        series: [{ name: "failed", cls: "s3", points: items.map((i) => [t(i), i.failure_rate]) }],
      }),
    );
  }

  const depBox = h("section", { "aria-labelledby": "h-deps" }, h("h2", { id: "h-deps" }, "Dependencies"));
  if (deps.err) depBox.append(failed("Dependencies", deps));
  else {
    depBox.append(
      barChart({
        id: "chart-dependencies",
        title: "Dependency calls by target",
        items: deps.ok.items.slice(0, 12).map((d) => ({ label: d.target || "(none)", value: d.calls })),
      }),
      table(
        "Dependencies",
        ["target", "type", "calls", "calls/s", "avg duration", "failure rate"],
        deps.ok.items.map((d) => [
          d.target || "(none)",
          d.dependency_type || "-",
          String(d.calls),
          formatNumber(d.calls_per_second, ""),
          formatNumber(d.avg_duration_ms, "ms"),
          formatNumber(d.failure_rate, "%"),
        ]),
        { empty: "No dependency calls in this time range." },
      ),
    );
  }

  const excBox = h("section", { "aria-labelledby": "h-exc" }, h("h2", { id: "h-exc" }, "Exceptions"));
  if (exceptions.err) excBox.append(failed("Exceptions", exceptions));
  else {
    excBox.append(
      table(
        "Exceptions by type",
        ["type", "count", "last seen", "latest message"],
        exceptions.ok.items.map((e) => [e.exception_type || "-", String(e.exceptions), when(e.last_seen), e.latest_message || ""]),
        { id: "exceptions", empty: "No exceptions in this time range." },
      ),
    );
  }

  const trBox = h(
    "section",
    { "aria-labelledby": "h-traces" },
    h("h2", { id: "h-traces" }, "Traces with the model's input and output"),
    h("p", { class: "help" }, 'The newest traces whose custom dimensions contain "input" (what score.py printed).'),
  );
  if (traces.err) trBox.append(failed("Traces", traces));
  else {
    trBox.append(
      table(
        "Traces",
        ["time", "input", "output", "message"],
        traces.ok.items.map((t) => {
          const io = ioOf(t);
          return [
            when(t.timestamp),
            h("code", { class: "io" }, compact(io.input)),
            h("code", { class: "io" }, compact(io.output)),
            h("span", { class: "message" }, compact(t.message || "")),
          ];
        }),
        { id: "traces", empty: "No traces with an input in this time range." },
      ),
    );
  }

  const schemaNote = requests.ok
    ? `${range[1]}, one point per ${range[3]}, from the ${requests.ok.schema === "workspace" ? "Log Analytics (App*)" : "classic App Insights"} tables; times in UTC.`
    : "";
  return h(
    "section",
    {},
    crumbs(
      ["#/tenants", "Tenants"],
      [tHash(tenant), tenant],
      [wHash(tenant, workspace), workspace],
      [eHash(tenant, workspace, name), name],
      ["", "telemetry"],
    ),
    h("h1", { tabindex: "-1" }, `Telemetry: ${name}`),
    form,
    h("p", { class: "help" }, schemaNote),
    charts,
    depBox,
    excBox,
    trBox,
  );
}
