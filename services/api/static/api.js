// Every call the web UI makes to the HTTP API, in one place (tests/api/test_web_ui.py checks each
// API path written here against the app's OpenAPI document).

/** A 4xx/5xx answer, its message taken from the API's `detail`. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(describe(detail) || `HTTP ${status}`);
    this.status = status;
  }
}

/** The API did not answer at all (stopped, network down): the page offers to try again. */
export class Unreachable extends Error {
  constructor(cause) {
    super(`Cannot reach the Cadenza API (${cause.message || cause}). Is it running?`);
    this.unreachable = true;
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

// The API token, when the server has one (CADENZA_API_TOKEN): asked on the first 401 and kept in
// this browser. It is also set as a cookie, which the server accepts only for what the browser
// loads by itself (audio, downloads, live updates): those cannot send a header.
const TOKEN_KEY = "cadenza.apiToken";
const storedToken = () => localStorage.getItem(TOKEN_KEY) || "";
const authorization = () => (storedToken() ? { Authorization: `Bearer ${storedToken()}` } : {});
const setTokenCookie = (token) => {
  document.cookie = `cadenza_token=${encodeURIComponent(token)}; path=/api; SameSite=Strict`;
};
if (storedToken()) setTokenCookie(storedToken());

/** `send()` again with a token when it was refused for the lack of one; asks only if no other request has meanwhile. */
async function withToken(send) {
  const sent = storedToken();
  try {
    return await send();
  } catch (error) {
    if (error.status !== 401) throw error;
    if (storedToken() === sent) {
      const token = window.prompt("This Cadenza API needs its access token (CADENZA_API_TOKEN of the server):");
      if (!token) throw error;
      localStorage.setItem(TOKEN_KEY, token.trim());
      setTokenCookie(token.trim());
    }
    return send();
  }
}

const request = (method, path, body) => withToken(async () => (await send(method, path, body)).payload);

// The next page a list answer names in its `Link: <…>; rel="next"` header; null on the last page.
const nextPage = (response) => (response.headers.get("Link") || "").match(/<([^>]*)>\s*;\s*rel="next"/)?.[1] ?? null;

/** Every item of a paged list: its pages in turn, each one's `Link` followed until a page has none. */
async function requestAll(path) {
  const items = [];
  for (let next = path; next;) {
    const answer = await withToken(() => send("GET", next));
    items.push(...answer.payload);
    next = nextPage(answer.response);
  }
  return items;
}

/** One page of a list as `{items, next}`: `next` is the path its `Link` names (null on the last
 * page), for a page that shows a list a page at a time to read when asked for more. */
export async function listPage(path) {
  const answer = await withToken(() => send("GET", path));
  return { items: answer.payload, next: nextPage(answer.response) };
}

/** A dataset with all its clips or pairs, gathered from its pages as `requestAll` does. */
async function requestDataset(path) {
  const first = await withToken(() => send("GET", path));
  const dataset = first.payload;
  for (let next = nextPage(first.response); next;) {
    const answer = await withToken(() => send("GET", next));
    dataset.clips.push(...answer.payload.clips);
    dataset.pairs.push(...answer.payload.pairs);
    next = nextPage(answer.response);
  }
  return dataset;
}

/** `{payload, response}`: the parsed JSON and the response it came in (for its headers). */
async function send(method, path, body) {
  const init = { method, headers: { Accept: "application/json", ...authorization() } };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new Unreachable(error);
  }
  const text = await response.text();
  let payload = null;
  try {
    payload = text ? JSON.parse(text) : null;
  } catch {
    payload = { detail: text };
  }
  if (!response.ok) throw new ApiError(response.status, payload && payload.detail);
  return { payload, response };
}

const id = encodeURIComponent;
// `?a=1&b=2` from the params that have a value ("" when none has).
const query = (params = {}) => {
  const search = new URLSearchParams(Object.entries(params).filter(([, value]) => value !== "" && value !== null && value !== undefined));
  return search.size ? `?${search}` : "";
};

/**
 * A multipart POST through XMLHttpRequest, the one browser API that reports upload progress:
 * `onProgress(fraction)` as the body is sent; resolves to the JSON answer like `request`.
 */
function upload(path, form, onProgress) {
  return withToken(() => uploadOnce(path, form, onProgress));
}

function uploadOnce(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(authorization())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("error", () => reject(new Unreachable(new Error("the upload was interrupted"))));
    xhr.addEventListener("load", () => {
      let payload = null;
      try {
        payload = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        payload = { detail: xhr.responseText };
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(payload);
      else reject(new ApiError(xhr.status, payload && payload.detail));
    });
    xhr.send(form);
  });
}

// The API's OpenAPI document, fetched once: the UI takes the API's enums (statuses, rating
// criteria) and defaults from it rather than keeping copies of its own.
let openapi = null;
/** A schema of the API's OpenAPI document by name, e.g. "RunStatus" or "GenerationCreate". */
export async function apiSchema(name) {
  openapi ??= request("GET", "/openapi.json").catch((error) => { openapi = null; throw error; });
  return (await openapi).components.schemas[name];
}

/** The allowed values of an enum: `apiEnum("RunStatus")`, or a property's (`"RatingCreate", "criterion"`). */
export async function apiEnum(schemaName, property) {
  const schema = await apiSchema(schemaName);
  return (property ? schema.properties[property] : schema).enum;
}

export const listDatasets = () => request("GET", "/api/datasets");
export const getDataset = (datasetId) => requestDataset(`/api/datasets/${id(datasetId)}`);
export const createDataset = (body) => request("POST", "/api/datasets", body);
export const addClip = (datasetId, form, onProgress = () => {}) =>
  upload(`/api/datasets/${id(datasetId)}/clips`, form, onProgress);
export const addPair = (datasetId, form, onProgress = () => {}) =>
  upload(`/api/datasets/${id(datasetId)}/pairs`, form, onProgress);
export const removeClip = (datasetId, clipId) => request("DELETE", `/api/datasets/${id(datasetId)}/clips/${id(clipId)}`);
export const removePair = (datasetId, pairId) => request("DELETE", `/api/datasets/${id(datasetId)}/pairs/${id(pairId)}`);
export const exportUrl = (datasetId) => `/api/datasets/${id(datasetId)}/export`;
export const clipAudioUrl = (clipId) => `/api/clips/${id(clipId)}/audio`;

export const listExperiments = () => requestAll("/api/experiments");
export const getExperiment = (experimentId) => request("GET", `/api/experiments/${id(experimentId)}`);
export const createExperiment = (body) => request("POST", "/api/experiments", body);
export const updateExperiment = (experimentId, body) => request("PATCH", `/api/experiments/${id(experimentId)}`, body);
export const requestRun = (experimentId, body) =>
  request("POST", `/api/experiments/${id(experimentId)}/runs`, body);

export const listRuns = (params) => requestAll("/api/runs" + query(params));
export const getRun = (runId) => request("GET", `/api/runs/${id(runId)}`);
export const runMetrics = (runId) => request("GET", `/api/runs/${id(runId)}/metrics`);
// The history comes a page at a time, each one's `Link` naming the next.
export const runHistory = (runId) => requestAll(`/api/runs/${id(runId)}/events`);
export const runStreamUrl = (runId) => `/api/runs/${id(runId)}/stream`;
export const cancelRun = (runId) => request("POST", `/api/runs/${id(runId)}/cancel`);

export const listAdapters = () => requestAll("/api/adapters");
export const getAdapter = (adapterId) => request("GET", `/api/adapters/${id(adapterId)}`);
export const adapterLineage = (adapterId) => request("GET", `/api/adapters/${id(adapterId)}/lineage`);
export const adapterDownloadUrl = (adapterId) => `/api/adapters/${id(adapterId)}/download`;

// The studio loop: generation, samples and their feedback, comparisons, datasets from feedback.
export const listGenerations = () => listPage("/api/generations");
export const getGeneration = (generationId) => request("GET", `/api/generations/${id(generationId)}`);
export const requestGeneration = (body) => request("POST", "/api/generations", body);
export const cancelGeneration = (generationId) => request("POST", `/api/generations/${id(generationId)}/cancel`);

export const listSamples = (filter) => listPage("/api/samples" + query(filter));
export const getSample = (sampleId) => request("GET", `/api/samples/${id(sampleId)}`);
export const sampleAudioUrl = (sampleId) => `/api/samples/${id(sampleId)}/audio`;
export const rateSample = (sampleId, body) => request("POST", `/api/samples/${id(sampleId)}/ratings`, body);
export const tagSample = (sampleId, tag) => request("POST", `/api/samples/${id(sampleId)}/tags`, { tag });
export const untagSample = (sampleId, tag) => request("DELETE", `/api/samples/${id(sampleId)}/tags/${id(tag)}`);
export const favoriteSample = (sampleId, favorite) =>
  request(favorite ? "PUT" : "DELETE", `/api/samples/${id(sampleId)}/favorite`);
export const addPreference = (body) => request("POST", "/api/preferences", body);

export const listComparisons = () => requestAll("/api/comparisons");
export const createComparison = (body) => request("POST", "/api/comparisons", body);
export const getComparison = (comparisonId) => request("GET", `/api/comparisons/${id(comparisonId)}`);
export const nextPair = (comparisonId) => request("GET", `/api/comparisons/${id(comparisonId)}/next`);
export const vote = (comparisonId, body) => request("POST", `/api/comparisons/${id(comparisonId)}/votes`, body);
export const comparisonResults = (comparisonId) => request("GET", `/api/comparisons/${id(comparisonId)}/results`);

export const previewDataset = (body) => request("POST", "/api/datasets/preview", body);
