// Every run across experiments: the queue, a filterable list, and several runs side by side
// (their loss curves on one chart, and where their configs differ).
import * as api from "./api.js";
import { duration, h, number, statusBadge, table, when } from "./dom.js";
import { COLORS, stepChart } from "./run.js";

function runRow(run, experimentName, selectable) {
  return h("tr", {},
    selectable ? h("td", {}, h("input", { type: "checkbox", name: "compare", value: run.id, "aria-label": `compare ${run.name}` })) : null,
    h("td", {}, h("a", { href: `#/runs/${run.id}` }, run.name)),
    h("td", {}, h("a", { href: `#/experiments/${run.experiment_id}` }, experimentName)),
    h("td", {}, statusBadge(run.status)),
    h("td", {}, number(run.final_loss)),
    h("td", {}, run.started_at ? duration(run.started_at, run.finished_at) : "—"),
    h("td", {}, when(run.requested_at)));
}

async function runsAndNames() {
  const [runs, experiments] = await Promise.all([api.listRuns(), api.listExperiments()]);
  const names = Object.fromEntries(experiments.map((e) => [e.id, e.name]));
  runs.sort((a, b) => b.requested_at.localeCompare(a.requested_at));
  return { runs, experiments, names };
}

/** The home page's view: what is queued or training now. */
export async function runsSection() {
  const { runs, names } = await runsAndNames();
  const active = runs.filter((run) => !run.finished);
  return h("section", {},
    h("h2", {}, "Training now"),
    active.length
      ? table(["Run", "Experiment", "Status", "Loss", "Duration", "Requested"], active.map((run) => runRow(run, names[run.experiment_id], false)))
      : h("p", { class: "empty" }, "Nothing queued or training."),
    h("p", {}, h("a", { href: "#/runs" }, `All runs (${runs.length})`)));
}

export async function runsPage() {
  const [{ runs, experiments, names }, statuses] = await Promise.all([runsAndNames(), api.apiEnum("RunStatus")]);
  const statusFilter = h("select", { name: "status", "aria-label": "status" },
    h("option", { value: "" }, "any status"), statuses.map((status) => h("option", { value: status }, status)));
  const experimentFilter = h("select", { name: "experiment", "aria-label": "experiment" },
    h("option", { value: "" }, "any experiment"), experiments.map((e) => h("option", { value: e.id }, e.name)));
  const body = h("div");
  const compareButton = h("button", { type: "button", disabled: true }, "Compare selected");

  function render() {
    const shown = runs.filter((run) =>
      (!statusFilter.value || run.status === statusFilter.value) &&
      (!experimentFilter.value || run.experiment_id === experimentFilter.value));
    body.replaceChildren(shown.length
      ? table(["", "Run", "Experiment", "Status", "Loss", "Duration", "Requested"], shown.map((run) => runRow(run, names[run.experiment_id], true)))
      : h("p", { class: "empty" }, runs.length ? "No run matches these filters." : "No run yet: start one from an experiment."));
    updateCompare();
  }
  const selected = () => [...body.querySelectorAll("input[name=compare]:checked")].map((box) => box.value);
  function updateCompare() {
    compareButton.disabled = selected().length < 2;
  }
  body.addEventListener("change", updateCompare);
  compareButton.addEventListener("click", () => { location.hash = `#/compare/${selected().join(",")}`; });
  statusFilter.addEventListener("change", render);
  experimentFilter.addEventListener("change", render);
  render();
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / runs"),
    h("h2", {}, "Runs"),
    h("div", { class: "filters" }, statusFilter, experimentFilter, compareButton),
    body);
}

/** Keys of the configs with their value per run; the differing keys first. */
function configDiff(runs) {
  const keys = [...new Set(runs.flatMap((run) => Object.keys(run.config)))].sort();
  const show = (value) => (value === undefined ? "—" : JSON.stringify(value));
  const rows = keys.map((key) => {
    const values = runs.map((run) => show(run.config[key]));
    return { key, values, differs: new Set(values).size > 1 };
  });
  const line = ({ key, values, differs }) => h("tr", { class: differs ? "differs" : null },
    h("th", { scope: "row" }, key), values.map((value) => h("td", {}, value)));
  const differing = rows.filter((row) => row.differs);
  const same = rows.filter((row) => !row.differs);
  return h("div", {},
    differing.length
      ? table(["Setting", ...runs.map((run) => run.name)], differing.map(line))
      : h("p", { class: "empty" }, "The configs are the same."),
    same.length ? h("details", {}, h("summary", {}, `${same.length} settings the same`),
      table(["Setting", ...runs.map((run) => run.name)], same.map(line))) : null);
}

export async function comparePage(runIds) {
  const runs = await Promise.all(runIds.map((runId) => api.getRun(runId)));
  const metrics = await Promise.all(runIds.map((runId) => api.runMetrics(runId)));
  const names = Object.fromEntries((await api.listExperiments()).map((e) => [e.id, e.name]));
  // Two runs may share a name across experiments: the legend says which is which.
  const labels = runs.map((run) => `${names[run.experiment_id]} / ${run.name}`);
  const chart = stepChart("Training loss", labels, COLORS);
  metrics.forEach((points, index) => points
    .filter((point) => point.split === "train")
    .forEach((point) => chart.set(labels[index], point.step, point.loss)));
  requestAnimationFrame(() => chart.draw());
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / ", h("a", { href: "#/runs" }, "runs"), " / compare"),
    h("h2", {}, `Comparing ${runs.length} runs`),
    table(["Run", "Experiment", "Status", "Final loss", "Best validation", "Steps", "Duration"], runs.map((run) => h("tr", {},
      h("td", {}, h("a", { href: `#/runs/${run.id}` }, run.name)),
      h("td", {}, names[run.experiment_id]),
      h("td", {}, statusBadge(run.status)),
      h("td", {}, number(run.final_loss)),
      h("td", {}, number(run.best_validation_loss)),
      h("td", {}, run.steps === null ? "—" : String(run.steps)),
      h("td", {}, run.started_at ? duration(run.started_at, run.finished_at) : "—")))),
    chart.element,
    h("h3", {}, "Config differences"),
    configDiff(runs));
}
