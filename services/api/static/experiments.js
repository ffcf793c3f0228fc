// Experiments: the list, creating one with its training config, and one experiment's runs.
import * as api from "./api.js";
import { errorBox, field, h, number, statusBadge, submitting, table, when } from "./dom.js";

// The common TrainingConfig fields; the JSON box takes any other (the API names a wrong one).
// Placeholders name the model's defaults ("default: …"), so they do not read as typed values: a
// field left empty is not sent and the default applies.
const COMMON_FIELDS = [
  { name: "num_epochs", label: "Epochs", type: "number", placeholder: "default: 3", min: 1 },
  { name: "batch_size", label: "Batch size", type: "number", placeholder: "default: 2", min: 1 },
  { name: "batch_frames", label: "Batch frames", type: "number", placeholder: "default: off", min: 1,
    hint: "Batch by length instead: audio frames per forward pass (50 per second), in place of the batch size" },
  { name: "learning_rate", label: "Learning rate", type: "number", placeholder: "default: 0.0001", step: "any" },
  { name: "lora_r", label: "LoRA r", type: "number", placeholder: "default: 16", min: 1 },
  { name: "lora_alpha", label: "LoRA alpha", type: "number", placeholder: "default: 32", min: 1 },
  { name: "max_steps", label: "Max steps", type: "number", placeholder: "default: no cap", min: 1 },
  { name: "base_model", label: "Base model", type: "text", placeholder: "default: facebook/musicgen-small",
    hint: "A Hugging Face id (downloaded by the trainer: it needs network) or a model folder on the trainer" },
];

function configFields() {
  return h("fieldset", { class: "config" },
    h("legend", {}, "Training config"),
    COMMON_FIELDS.map(({ name, label, hint, ...input }) => field(label, h("input", { name, ...input }), hint)),
    field("More settings (JSON)",
      h("textarea", { name: "extra", rows: 3 }),
      'Any other TrainingConfig field, e.g. {"warmup_steps": 10, "dpo_beta": 0.01}; the fields above win over the same key here.'));
}

/** The config the form describes; a JSON box that does not parse is the form's error. */
function readConfig(form) {
  const text = form.elements.extra.value.trim();
  let config = {};
  if (text) {
    try {
      config = JSON.parse(text);
    } catch (error) {
      throw new Error(`More settings: not valid JSON (${error.message})`);
    }
    if (typeof config !== "object" || config === null || Array.isArray(config)) {
      throw new Error("More settings: write a JSON object, e.g. {\"warmup_steps\": 10}");
    }
  }
  for (const { name, type } of COMMON_FIELDS) {
    const value = form.elements[name].value.trim();
    if (value !== "") config[name] = type === "number" ? Number(value) : value;
  }
  return config;
}

export async function experimentsSection() {
  const [experiments, datasets] = await Promise.all([api.listExperiments(), api.listDatasets()]);
  const names = Object.fromEntries(datasets.map((d) => [d.id, d.name]));
  const box = errorBox();
  const form = submitting(
    h("form", { class: "inline" },
      field("Name", h("input", { name: "name", required: true }), "e.g. warm lofi, r=16"),
      field("Dataset", h("select", { name: "dataset_id", required: true },
        datasets.map((d) => h("option", { value: d.id }, `${d.name} (${d.kind})`)))),
      field("Description", h("input", { name: "description" }), "Optional"),
      configFields(),
      h("button", { type: "submit" }, "Create experiment"),
      box),
    box,
    (form) => api.createExperiment({
      name: form.elements.name.value,
      dataset_id: form.elements.dataset_id.value,
      description: form.elements.description.value,
      config: readConfig(form),
    }),
    (experiment) => { location.hash = `#/experiments/${experiment.id}`; },
  );
  return h("section", {},
    h("h2", {}, "Experiments"),
    experiments.length
      ? table(["Name", "Dataset", "Runs", "Best loss", "Updated"], experiments.map((e) => h("tr", {},
            h("td", {}, h("a", { href: `#/experiments/${e.id}` }, e.name)),
            h("td", {}, h("a", { href: `#/datasets/${e.dataset_id}` }, names[e.dataset_id] || e.dataset_id)),
            h("td", {}, String(e.runs.length)),
            h("td", {}, bestLoss(e.best_runs)),
            h("td", {}, when(e.updated_at)))))
      : h("p", { class: "empty" }, "No experiment yet."),
    datasets.length ? form : h("p", { class: "empty" }, "Create a dataset first to start an experiment."));
}

function runsTable(runs) {
  if (!runs.length) return h("p", { class: "empty" }, "No run yet.");
  return table(["Run", "Status", "Attempt", "Final loss", "Requested", "Finished", "Adapter"], runs.map((run) => h("tr", {},
      h("td", {}, h("a", { href: `#/runs/${run.id}` }, run.name)),
      h("td", {}, statusBadge(run.status)),
      h("td", {}, String(run.attempt)),
      h("td", {}, number(run.final_loss)),
      h("td", {}, when(run.requested_at)),
      h("td", {}, when(run.finished_at)),
      h("td", {}, run.adapter_id
        ? h("a", { href: `#/adapters/${run.adapter_id}` }, "adapter")
        : "—"))));
}

/** The experiment's best completed run per training type (the API computes it). */
function bestLoss(bestRuns) {
  const best = [bestRuns.supervised, bestRuns.preference].filter(Boolean);
  if (!best.length) return "—";
  return best.map((run, i) => [i ? ", " : "", h("a", { href: `#/runs/${run.id}` }, `${number(run.final_loss)} (${run.name})`)]).flat();
}

/** Rename, re-describe or change the default config: a new ExperimentUpdated event, not an edit in place. */
function editForm(experiment, datasets) {
  const box = errorBox();
  const form = h("form", { class: "inline" },
    field("Name", h("input", { name: "name", required: true, value: experiment.name })),
    field("Dataset", h("select", { name: "dataset_id" },
      datasets.map((d) => h("option", { value: d.id, selected: d.id === experiment.dataset_id }, `${d.name} (${d.kind})`)))),
    field("Description", h("input", { name: "description", value: experiment.description }), "Optional"),
    field("Default config (JSON)", h("textarea", { name: "config", rows: 8 }), "Replaces the whole default config of later runs."),
    h("button", { type: "submit" }, "Save"),
    box);
  form.elements.config.value = JSON.stringify(experiment.config, null, 2);
  return h("details", { class: "edit" }, h("summary", {}, "Edit experiment"), submitting(form, box, (form) => {
    let config;
    try {
      config = JSON.parse(form.elements.config.value);
    } catch (error) {
      throw new Error(`Default config: not valid JSON (${error.message})`);
    }
    return api.updateExperiment(experiment.id, {
      name: form.elements.name.value, description: form.elements.description.value,
      dataset_id: form.elements.dataset_id.value, config,
    });
  }, () => { location.reload(); }));
}

function startRunForm(experiment) {
  const box = errorBox();
  return submitting(
    h("form", { class: "inline" },
      h("h3", {}, "Start a run"),
      field("Name", h("input", { name: "name" }), `Empty: run-${experiment.runs.length + 1}`),
      field("Overrides (JSON)", h("textarea", { name: "config", rows: 2 }),
        'Merged over the experiment\'s config for this run only, e.g. {"learning_rate": 0.0002}'),
      h("button", { type: "submit" }, "Start run"),
      box),
    box,
    (form) => {
      const text = form.elements.config.value.trim();
      let config = {};
      try {
        config = text ? JSON.parse(text) : {};
      } catch (error) {
        throw new Error(`Overrides: not valid JSON (${error.message})`);
      }
      const name = form.elements.name.value.trim();
      return api.requestRun(experiment.id, name ? { name, config } : { config });
    },
    (run) => { location.hash = `#/runs/${run.id}`; },
  );
}

/** One experiment: its config, its runs (refreshed while one is queued or running), a run form. */
export async function experimentPage(main, experimentId, onLeave) {
  const [experiment, datasets] = await Promise.all([api.getExperiment(experimentId), api.listDatasets()]);
  const dataset = datasets.find((d) => d.id === experiment.dataset_id);
  const runs = h("div", {}, runsTable(experiment.runs));
  const timer = setInterval(async () => {
    try {
      const latest = await api.getExperiment(experimentId);
      runs.replaceChildren(runsTable(latest.runs));
      if (!latest.runs.some((run) => !run.finished)) clearInterval(timer);
    } catch {
      // A failed refresh keeps the table as it was; the next tick tries again.
    }
  }, 3000);
  if (!experiment.runs.some((run) => !run.finished)) clearInterval(timer);
  onLeave(() => clearInterval(timer));
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / ", experiment.name),
    h("h2", {}, experiment.name),
    experiment.description ? h("p", {}, experiment.description) : null,
    h("p", { class: "facts" }, "dataset ", h("a", { href: `#/datasets/${experiment.dataset_id}` }, dataset ? dataset.name : experiment.dataset_id),
      " · created ", when(experiment.created_at)),
    h("p", { class: "facts" }, "best: ", bestLoss(experiment.best_runs)),
    editForm(experiment, datasets),
    h("h3", {}, "Config"),
    h("pre", { class: "json" }, JSON.stringify(experiment.config, null, 2)),
    h("h3", {}, "Runs"),
    runs,
    startRunForm(experiment));
}
