// Drives the official @azure/monitor-query-logs client against the service's Log Analytics-
// compatible endpoint; run by tests/integration/test_js_client.py, which checks the JSON this
// prints. Inputs (environment): ENDPOINT (<service>/loganalytics/v1), API_KEY, WORKSPACE_ID,
// RESOURCE_ID. The service's certificate is trusted through NODE_EXTRA_CA_CERTS.
import { LogsQueryClient, LogsQueryResultStatus } from "@azure/monitor-query-logs";

const { ENDPOINT, API_KEY, WORKSPACE_ID, RESOURCE_ID } = process.env;
// A TokenCredential whose token is an API key of the service.
const credential = {
  getToken: async () => ({ token: API_KEY, expiresOnTimestamp: Date.now() + 3600 * 1000 }),
};
const client = new LogsQueryClient(credential, {
  endpoint: ENDPOINT,
  retryOptions: { maxRetries: 0 },
});
const day = { duration: "P1D" };

function describe(result) {
  return {
    status: result.status,
    tables: (result.tables ?? result.partialTables ?? []).map((t) => ({
      name: t.name,
      columns: t.columnDescriptors.map((c) => c.name),
      rows: t.rows,
    })),
    partialError: result.partialError ? { code: result.partialError.code } : null,
    error: result.error ? { code: result.error.code } : null,
  };
}

async function attempt(fn) {
  try {
    return describe(await fn());
  } catch (e) {
    return { thrown: { name: e.name, statusCode: e.statusCode, code: e.code,
                       detailsCode: e.details?.error?.code ?? null } };
  }
}

const out = {};
out.query = await attempt(() =>
  client.queryWorkspace(WORKSPACE_ID, "AppRequests | summarize n = count()", day));
out.resource = await attempt(() =>
  client.queryResource(RESOURCE_ID, "requests | summarize n = count()", day));
out.partial = await attempt(() =>
  client.queryWorkspace(WORKSPACE_ID, "AppRequests | summarize n = count() by AppRoleName", day));
out.error = await attempt(() => client.queryWorkspace(WORKSPACE_ID, "AppRequests | wher", day));
out.missing = await attempt(() =>
  client.queryWorkspace("00000000-0000-0000-0000-000000000000", "AppRequests", day));
const batch = await client.queryBatch([
  { workspaceId: WORKSPACE_ID, query: "AppRequests | summarize n = count()", timespan: day },
  { workspaceId: WORKSPACE_ID, query: "AppRequests | wher", timespan: day },
  { workspaceId: "00000000-0000-0000-0000-000000000000", query: "AppRequests", timespan: day },
]);
out.batch = batch.map(describe);
out.statuses = LogsQueryResultStatus;
console.log(JSON.stringify(out));
