// One run, live: its history from the stream, then its new events as server-sent events, folded
// into the same state (status, loss curve, DPO rewards, logs) by one function.
import * as api from "./api.js";
import { duration, errorBox, h, number, seconds, statusBadge, when } from "./dom.js";
import { logView } from "./logs.js";
import uPlot from "./vendor/uPlot.esm.js";

// Every event type of a run: the stream names each SSE message by its type.
const RUN_EVENTS = [
  "RunRequested", "RunStarted", "DatasetExported", "LossReported", "RunLogged", "CheckpointSaved",
  "AdapterSaved", "RunCompleted", "RunFailed", "RunAttemptFailed", "RunCancelRequested", "RunCancelled",
];

/** A line chart of series keyed by step; `set(series, step, value)` then `draw()`. */
export function stepChart(title, seriesNames, colors) {
  const points = new Map(seriesNames.map((name) => [name, new Map()]));
  const element = h("div", { class: "chart" });
  let plot = null;
  const options = () => ({
    title,
    width: Math.max(element.clientWidth, 240),
    height: 260,
    scales: { x: { time: false } },
    axes: [{ label: "step", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] }, {}],
    series: [{ label: "step" }, ...seriesNames.map((name, i) => ({
      label: name, stroke: colors[i % colors.length], width: 2, spanGaps: true, points: { size: 5 },
    }))],
  });
  const data = () => {
    const steps = [...new Set([...points.values()].flatMap((series) => [...series.keys()]))].sort((a, b) => a - b);
    return [steps, ...[...points.values()].map((series) => steps.map((step) => series.get(step) ?? null))];
  };
  return {
    element,
    set(name, step, value) { points.get(name).set(step, value); },
    has(name) { return points.has(name); },
    draw() {
      if (!element.isConnected) return;
      if ([...points.values()].every((series) => series.size === 0)) {
        element.textContent = `${title}: nothing reported yet.`;
        return;
      }
      if (plot === null) {
        element.textContent = "";
        plot = new uPlot(options(), data(), element);
        // The chart follows its card's width (a window resized, a phone turned).
        new ResizeObserver(() => plot.setSize({ width: Math.max(element.clientWidth, 240), height: 260 })).observe(element);
      }
      else plot.setData(data());
    },
  };
}

export const COLORS = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2"];

/** The steps the run will take: its `max_steps`, else estimated from the rows it trains on. Batches
 * packed by length (`batch_frames`) depend on the clips' lengths, which the page does not know: no
 * estimate then. */
function totalSteps(run) {
  const c = run.config;
  if (c.max_steps) return { steps: c.max_steps, estimated: false };
  if (!run.dataset_rows || c.batch_frames) return null;
  const training = Math.max(1, Math.floor(run.dataset_rows * (1 - (c.validation_split || 0))));
  const perEpoch = Math.ceil(training / (c.batch_size || 1) / (c.gradient_accumulation_steps || 1));
  return { steps: perEpoch * (c.num_epochs || 1), estimated: true };
}

function progress(run, attemptStartedAt) {
  const total = totalSteps(run);
  const done = run.steps ?? 0;
  if (!total) return run.steps === null || run.steps === undefined ? "—" : `step ${done}`;
  const text = `step ${done} of ${total.estimated ? "about " : ""}${total.steps}`;
  if (run.status !== "running" || done === 0 || !attemptStartedAt) return text;
  const perStep = (Date.now() - new Date(attemptStartedAt)) / 1000 / done;
  return `${text} · about ${seconds(perStep * Math.max(0, total.steps - done))} left`;
}

// What the timeline says of each event; loss reports and log chunks are the chart and the log.
const TIMELINE = {
  RunRequested: (p) => `requested as ${p.name}`,
  RunStarted: (p) => `attempt ${p.attempt} started on ${p.trainer_id}`,
  DatasetExported: (p) => `dataset exported: ${p.rows} rows`,
  CheckpointSaved: (p) => `checkpoint at step ${p.step}`,
  AdapterSaved: (p) => `adapter ${p.name} saved`,
  RunCompleted: (p) => `completed after ${p.steps} steps, final loss ${number(p.final_loss)}`,
  RunFailed: (p) => `failed: ${p.error}`,
  RunCancelRequested: () => "cancel requested",
  RunCancelled: () => "cancelled",
};

export async function runPage(main, runId, onLeave) {
  const run = await api.getRun(runId);
  const experiment = await api.getExperiment(run.experiment_id);
  const lossChart = stepChart("Loss", ["train", "validation"], COLORS);
  let rewardChart = null;  // made once a LossReported carries metrics (DPO rewards)
  const rewardSlot = h("div");
  const logs = logView();
  const timeline = h("ol", { class: "timeline" });
  const summary = h("div", { class: "summary" });
  const actionBox = errorBox();
  let lastSeq = 0;
  let attemptStartedAt = run.started_at;

  function renderSummary() {
    const active = !run.finished;
    summary.replaceChildren(h("div", {},
      h("dl", {},
        h("dt", {}, "Status"), h("dd", {}, statusBadge(run.status), run.cancel_requested && active ? " (cancel requested)" : ""),
        h("dt", {}, "Progress"), h("dd", { class: "progress" }, progress(run, attemptStartedAt)),
        h("dt", {}, "Requested"), h("dd", {}, when(run.requested_at)),
        h("dt", {}, "Started"), h("dd", {}, when(run.started_at)),
        h("dt", {}, "Finished"), h("dd", {}, when(run.finished_at)),
        h("dt", {}, "Duration"), h("dd", {}, run.started_at ? duration(run.started_at, run.finished_at) : "—"),
        h("dt", {}, "Attempt"), h("dd", {}, String(run.attempt)),
        h("dt", {}, "Trainer"), h("dd", {}, run.trainer_id || "—"),
        h("dt", {}, "Final loss"), h("dd", {}, number(run.final_loss)),
        h("dt", {}, "Best validation loss"), h("dd", {}, number(run.best_validation_loss)),
        h("dt", {}, "Dataset rows"), h("dd", {}, run.dataset_rows === null ? "—" : String(run.dataset_rows)),
        h("dt", {}, "Adapter"), h("dd", {}, run.adapter_id
          ? [h("a", { href: `#/adapters/${run.adapter_id}` }, "adapter"), " · ",
             h("a", { href: api.adapterDownloadUrl(run.adapter_id), download: true }, "download (zip)")]
          : "—")),
      run.error ? h("p", { class: "error" }, run.error) : null,
      h("div", { class: "actions" },
        active && !run.cancel_requested ? h("button", { class: "danger", onclick: cancel }, "Cancel run") : null,
        run.finished && !run.adapter_id ? h("button", { onclick: retry }, "Retry as a new run") : null,
        run.adapter_id ? h("a", { class: "button", href: `#/generate?adapter=${run.adapter_id}` }, "Generate with this adapter") : null),
      actionBox));
  }

  async function retry(event) {
    actionBox.clear();
    event.target.disabled = true;
    try {
      // The same full config, as the overrides of a new run of the same experiment.
      const again = await api.requestRun(run.experiment_id, { name: `${run.name} (retry)`, config: run.config });
      location.hash = `#/runs/${again.id}`;
    } catch (error) {
      event.target.disabled = false;
      actionBox.show(error);
    }
  }

  async function cancel(event) {
    if (!confirm(`Cancel run ${run.name}? A running training stops at its next step.`)) return;
    actionBox.clear();
    event.target.disabled = true;
    try {
      const answer = await api.cancelRun(runId);
      // The live stream may have brought the run's end before this answer, which the server read
      // from the read models before they had folded it: a finished run never goes back to running.
      if (!run.finished) {
        Object.assign(run, { status: answer.status, finished: answer.finished, cancel_requested: answer.cancel_requested });
      }
      renderSummary();
    } catch (error) {
      event.target.disabled = false;
      actionBox.show(error);
    }
  }

  /** Folds one RunEvent (from the history or the live stream) into the page; each seq once. The
   * run's status comes with the event, as the server's fold of the run's history decided it. */
  function apply(event) {
    if (event.seq <= lastSeq) return;
    lastSeq = event.seq;
    const { status, finished, attempt, cancel_requested, error } = event.run;
    Object.assign(run, { status, finished, attempt, cancel_requested, error });
    const p = event.payload;
    if (TIMELINE[event.type]) {
      timeline.append(h("li", {}, h("time", { datetime: event.occurred_at }, when(event.occurred_at)), " ",
        h("span", { class: `event event-${event.type}` }, TIMELINE[event.type](p))));
    }
    switch (event.type) {
      case "RunStarted":
        Object.assign(run, { trainer_id: p.trainer_id });
        run.started_at = run.started_at || event.occurred_at;
        attemptStartedAt = event.occurred_at;
        logs.add([`--- attempt ${p.attempt} started on ${p.trainer_id} ---`]);
        break;
      case "DatasetExported":
        run.dataset_rows = p.rows;
        break;
      case "LossReported":
        // A resumed attempt reports its steps again: the latest value of a step wins.
        lossChart.set(p.split, p.step, p.loss);
        if (p.split === "train" && Object.keys(p.metrics).length) {
          if (rewardChart === null) {
            const keys = Object.keys(p.metrics).sort();
            const isDpo = keys.some((key) => key.startsWith("rewards/"));
            rewardChart = stepChart(isDpo ? "DPO rewards" : "Metrics", keys, COLORS.slice(2).concat(COLORS));
            rewardSlot.replaceChildren(rewardChart.element);
          }
          for (const [key, value] of Object.entries(p.metrics)) {
            if (rewardChart.has(key)) rewardChart.set(key, p.step, value);
          }
        }
        run.steps = p.split === "train" ? Math.max(run.steps ?? 0, p.step) : run.steps;
        break;
      case "RunLogged":
        logs.add(p.lines);
        break;
      case "RunCompleted":
        if (status === "completed") {
          Object.assign(run, {
            final_loss: p.final_loss, best_validation_loss: p.best_validation_loss, steps: p.steps,
            adapter_id: p.adapter_id, finished_at: event.occurred_at,
          });
        }
        break;
      case "RunFailed":
      case "RunCancelled":
        if (finished && !run.finished_at) run.finished_at = event.occurred_at;
        break;
    }
  }

  let drawQueued = false;
  function redraw() {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => {
      drawQueued = false;
      renderSummary();
      lossChart.draw();
      if (rewardChart) rewardChart.draw();
    });
  }

  // Listen first, then read the history: an event landing in between arrives on the stream and
  // `apply` skips what the history already held.
  let source = null;
  const buffered = [];
  let historyRead = false;
  const live = h("span", { class: "live" });
  if (!run.finished) {
    source = new EventSource(api.runStreamUrl(runId));
    live.textContent = "live";
    for (const type of RUN_EVENTS) {
      source.addEventListener(type, (message) => {
        const event = JSON.parse(message.data);
        if (!historyRead) return buffered.push(event);
        apply(event);
        redraw();
        if (run.finished) stop();
      });
    }
    source.addEventListener("error", () => {
      // The server ends the stream after the final event; the browser would reconnect for ever.
      if (run.finished) stop();
      else live.textContent = "reconnecting…";
    });
    source.addEventListener("open", () => { live.textContent = "live"; });
  }
  function stop() {
    if (source) source.close();
    source = null;
    live.textContent = "";
  }
  onLeave(stop);

  for (const event of await api.runHistory(runId)) apply(event);
  historyRead = true;
  buffered.forEach(apply);
  if (run.finished) stop();
  renderSummary();

  // The duration and the ETA move while it runs, between events too.
  const ticking = setInterval(() => { if (run.status === "running") renderSummary(); }, 1000);
  onLeave(() => clearInterval(ticking));

  const page = h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / ",
      h("a", { href: `#/experiments/${run.experiment_id}` }, experiment.name), " / ", run.name),
    h("h2", {}, run.name, " ", h("span", { class: "kind" }, run.dataset_type), " ", live),
    summary,
    lossChart.element,
    rewardSlot,
    h("h3", {}, "Timeline"),
    timeline,
    h("h3", {}, "Logs"),
    logs.element,
    h("h3", {}, "Config"),
    h("pre", { class: "json" }, JSON.stringify(run.config, null, 2)));
  // Charts measure their width once on the page; the log opens at its latest lines.
  requestAnimationFrame(() => {
    redraw();
    logs.scrollToEnd();
  });
  return page;
}
