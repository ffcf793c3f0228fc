// Every call the web UI makes to the HTTP API, in one place (tests/api/test_web_ui.py checks each
// API path written here against the app's OpenAPI document).

/** A 4xx/5xx answer, its message taken from the API's `detail`. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(describe(detail) || `HTTP ${status}`);
    this.status = status;
  }
}

// `detail` is a string, or (422) a list of {loc, msg}: "config → learning_rate: Input should be > 0".
function describe(detail) {
  if (typeof detail === "string") return detail;
  if (!Array.isArray(detail)) return "";
  return detail
    .map((item) => {
      const where = (item.loc || []).filter((part) => part !== "body").join(" → ");
      return where ? `${where}: ${item.msg}` : item.msg;
    })
    .join("\n");
}

async function request(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let payload = null;
  try {
    payload = text ? JSON.parse(text) : null;
  } catch {
    payload = { detail: text };
  }
  if (!response.ok) throw new ApiError(response.status, payload && payload.detail);
  return payload;
}

const id = encodeURIComponent;

export const listDatasets = () => request("GET", "/api/datasets");
export const getDataset = (datasetId) => request("GET", `/api/datasets/${id(datasetId)}`);
export const createDataset = (body) => request("POST", "/api/datasets", body);
export const addClip = (datasetId, form) => request("POST", `/api/datasets/${id(datasetId)}/clips`, form);
export const addPair = (datasetId, form) => request("POST", `/api/datasets/${id(datasetId)}/pairs`, form);
export const exportUrl = (datasetId) => `/api/datasets/${id(datasetId)}/export`;
export const clipAudioUrl = (clipId) => `/api/clips/${id(clipId)}/audio`;

export const listExperiments = () => request("GET", "/api/experiments");
export const getExperiment = (experimentId) => request("GET", `/api/experiments/${id(experimentId)}`);
export const createExperiment = (body) => request("POST", "/api/experiments", body);
export const requestRun = (experimentId, body) =>
  request("POST", `/api/experiments/${id(experimentId)}/runs`, body);

export const getRun = (runId) => request("GET", `/api/runs/${id(runId)}`);
export const runHistory = (runId) => request("GET", `/api/runs/${id(runId)}/events`);
export const runStreamUrl = (runId) => `/api/runs/${id(runId)}/stream`;
export const cancelRun = (runId) => request("POST", `/api/runs/${id(runId)}/cancel`);

export const adapterDownloadUrl = (adapterId) => `/api/adapters/${id(adapterId)}/download`;
