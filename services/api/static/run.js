// One run, live: its history from the stream, then its new events as server-sent events, folded
// into the same state (status, loss curve, DPO rewards, logs) by one function.
import * as api from "./api.js";
import { errorBox, h, number, statusBadge, when } from "./dom.js";
import uPlot from "./vendor/uPlot.esm.js";

// Every event type of a run: the stream names each SSE message by its type.
const RUN_EVENTS = [
  "RunRequested", "RunStarted", "DatasetExported", "LossReported", "RunLogged", "CheckpointSaved",
  "AdapterSaved", "RunCompleted", "RunFailed", "RunAttemptFailed", "RunCancelRequested", "RunCancelled",
];

/** A line chart of series keyed by step; `set(series, step, value)` then `draw()`. */
function stepChart(title, seriesNames, colors) {
  const points = new Map(seriesNames.map((name) => [name, new Map()]));
  const element = h("div", { class: "chart" });
  let plot = null;
  const options = () => ({
    title,
    width: Math.max(element.clientWidth, 320),
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
      }
      else plot.setData(data());
    },
    resize() { if (plot) plot.setSize({ width: Math.max(element.clientWidth, 320), height: 260 }); },
  };
}

const COLORS = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2"];

export async function runPage(main, runId, onLeave) {
  const run = await api.getRun(runId);
  const lossChart = stepChart("Loss", ["train", "validation"], COLORS);
  let rewardChart = null;  // made once a LossReported carries metrics (DPO rewards)
  const rewardSlot = h("div");
  const log = h("pre", { class: "log" });
  const summary = h("div", { class: "summary" });
  const cancelBox = errorBox();
  let lastSeq = 0;

  function renderSummary() {
    const active = !run.finished;
    summary.replaceChildren(h("div", {},
      h("dl", {},
        h("dt", {}, "Status"), h("dd", {}, statusBadge(run.status), run.cancel_requested && active ? " (cancel requested)" : ""),
        h("dt", {}, "Attempt"), h("dd", {}, String(run.attempt)),
        h("dt", {}, "Steps"), h("dd", {}, run.steps === null || run.steps === undefined ? "—" : String(run.steps)),
        h("dt", {}, "Final loss"), h("dd", {}, number(run.final_loss)),
        h("dt", {}, "Best validation loss"), h("dd", {}, number(run.best_validation_loss)),
        h("dt", {}, "Dataset rows"), h("dd", {}, run.dataset_rows === null ? "—" : String(run.dataset_rows)),
        h("dt", {}, "Requested"), h("dd", {}, when(run.requested_at)),
        h("dt", {}, "Adapter"), h("dd", {}, run.adapter_id
          ? h("a", { href: api.adapterDownloadUrl(run.adapter_id), download: true }, "download adapter (zip)")
          : "—")),
      run.error ? h("p", { class: "error" }, run.error) : null,
      active && !run.cancel_requested ? h("button", { class: "danger", onclick: cancel }, "Cancel run") : null,
      cancelBox));
  }

  async function cancel(event) {
    cancelBox.clear();
    event.target.disabled = true;
    try {
      const answer = await api.cancelRun(runId);
      Object.assign(run, { status: answer.status, finished: answer.finished, cancel_requested: answer.cancel_requested });
      renderSummary();
    } catch (error) {
      event.target.disabled = false;
      cancelBox.show(error);
    }
  }

  function addLogLines(lines) {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(lines.join("\n") + "\n");
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  /** Folds one RunEvent (from the history or the live stream) into the page; each seq once. The
   * run's status comes with the event, as the server's fold of the run's history decided it. */
  function apply(event) {
    if (event.seq <= lastSeq) return;
    lastSeq = event.seq;
    const { status, finished, attempt, cancel_requested, error } = event.run;
    Object.assign(run, { status, finished, attempt, cancel_requested, error });
    const p = event.payload;
    switch (event.type) {
      case "RunStarted":
        addLogLines([`--- attempt ${p.attempt} started on ${p.trainer_id} ---`]);
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
        addLogLines(p.lines);
        break;
      case "RunCompleted":
        if (status === "completed") {
          Object.assign(run, {
            final_loss: p.final_loss, best_validation_loss: p.best_validation_loss, steps: p.steps, adapter_id: p.adapter_id,
          });
        }
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
  const onResize = () => { lossChart.resize(); if (rewardChart) rewardChart.resize(); };
  window.addEventListener("resize", onResize);
  onLeave(() => window.removeEventListener("resize", onResize));

  for (const event of await api.runHistory(runId)) apply(event);
  historyRead = true;
  buffered.forEach(apply);
  if (run.finished) stop();
  renderSummary();

  const page = h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / ",
      h("a", { href: `#/experiments/${run.experiment_id}` }, "experiment"), " / run"),
    h("h2", {}, run.name, " ", h("span", { class: "kind" }, run.dataset_type), " ", live),
    summary,
    lossChart.element,
    rewardSlot,
    h("h3", {}, "Logs"),
    log,
    h("h3", {}, "Config"),
    h("pre", { class: "json" }, JSON.stringify(run.config, null, 2)));
  // Charts measure their width once on the page; the log opens at its latest lines.
  requestAnimationFrame(() => {
    redraw();
    log.scrollTop = log.scrollHeight;
  });
  return page;
}
