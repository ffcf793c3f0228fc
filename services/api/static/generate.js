// Generation: a form for a request (base model or an adapter), and a request's status with its
// samples as they arrive.
import * as api from "./api.js";
import { errorBox, field, h, moreButton, statusBadge, submitting, table, when } from "./dom.js";
import { sampleCard, sampleContext } from "./samples.js";

export function adapterOptions(adapters, selected) {
  return [h("option", { value: "" }, "base model (no adapter)"),
    adapters.map((a) => h("option", { value: a.id, selected: a.id === selected }, a.name))];
}

/** What made a sample or a generation: the adapter's name, or "base model …". */
export function madeBy(adapterId, baseModel, names) {
  return adapterId ? names[adapterId] || "a deleted adapter" : `base model ${baseModel}`;
}

// The sampling settings, each filled in with the API's own default.
const SETTINGS = [
  ["guidance_scale", "Guidance", "1: off"],
  ["temperature", "Temperature", null],
  ["top_k", "Top-k", "0: no top-k"],
  ["top_p", "Top-p", "0: no nucleus sampling"],
];

export async function generatePage() {
  const preselected = new URLSearchParams(location.hash.split("?")[1] || "").get("adapter");
  const [adapters, generations, request] = await Promise.all(
    [api.listAdapters(), api.listGenerations(), api.apiSchema("GenerationCreate")]);
  const defaults = Object.fromEntries(Object.entries(request.properties).map(([name, p]) => [name, p.default]));
  const names = Object.fromEntries(adapters.map((a) => [a.id, a.name]));
  const rows = (page) => page.map((g) => h("tr", {},
    h("td", {}, h("a", { href: `#/generations/${g.id}` }, g.prompt)),
    h("td", {}, madeBy(g.adapter_id, g.base_model, names)),
    h("td", {}, statusBadge(g.status)),
    h("td", {}, when(g.requested_at))));
  const listed = table(["Prompt", "Made by", "Status", "Requested"], rows(generations.items));
  const box = errorBox();
  const number = (name, attrs = {}) => h("input", { name, type: "number", step: "any", required: true, value: defaults[name], ...attrs });
  const form = submitting(
    h("form", { class: "inline" },
      field("Prompt", h("input", { name: "prompt", required: true }), "What the music should be, e.g. warm lofi piano with vinyl crackle"),
      field("Adapter", h("select", { name: "adapter_id" }, adapterOptions(adapters, preselected))),
      field("Base model", h("input", { name: "base_model" }), "Empty: the adapter's base model, or MusicGen small without one"),
      field("Seconds", number("duration_seconds", { min: 0.1, max: 120 })),
      field("Samples", number("num_samples", { min: 1, max: 8, step: 1 })),
      field("Seed", number("seed", { min: 0, step: 1 }), "The same seed and settings give the same music"),
      SETTINGS.map(([name, label, hint]) => field(label, number(name), hint)),
      h("button", { type: "submit" }, "Generate"),
      box),
    box,
    (form) => {
      const e = form.elements;
      const body = { prompt: e.prompt.value, adapter_id: e.adapter_id.value || null, base_model: e.base_model.value.trim() || null };
      for (const name of ["duration_seconds", "num_samples", "seed", ...SETTINGS.map(([name]) => name)]) body[name] = Number(e[name].value);
      return api.requestGeneration(body);
    },
    (generation) => { location.hash = `#/generations/${generation.id}`; });
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / generate"),
    h("h2", {}, "Generate"),
    form,
    h("h3", {}, "Recent generations"),
    generations.items.length ? listed : h("p", { class: "empty" }, "Nothing generated yet."),
    moreButton("Older generations", generations.next, api.listPage,
      (page) => listed.querySelector("tbody").append(...rows(page))));
}

/** One generation request, refreshed until it finishes; its samples, with players and feedback,
 * are added as they arrive (a sample already shown keeps its player). */
export async function generationPage(generationId, onLeave) {
  const [first, context] = await Promise.all([api.getGeneration(generationId), sampleContext()]);
  const heading = h("h2");
  const facts = h("p", { class: "facts" });
  const actions = h("div", { class: "actions" });
  const box = errorBox();
  const samples = h("ul", { class: "items" });
  const shown = new Set();
  let timer = null;
  let finished = false;

  function render(generation) {
    // Answers can arrive out of order (a refresh sent before a slower cancel's answer, or after):
    // once a finished generation is shown, an older answer never takes it back to running.
    if (finished) return;
    finished = generation.finished;
    heading.replaceChildren(generation.prompt, " ", statusBadge(generation.status));
    facts.replaceChildren(
      `${madeBy(generation.adapter_id, generation.base_model, context.names)} · ${generation.num_samples} × ${generation.duration_seconds} s · seed ${generation.seed}`,
      generation.steps_total && !generation.finished ? ` · step ${generation.steps_done ?? 0} of ${generation.steps_total}` : "",
      generation.cancel_requested && !generation.finished ? " · cancel requested" : "");
    actions.replaceChildren(
      generation.error ? h("p", { class: "error" }, generation.error) : "",
      !generation.finished && !generation.cancel_requested ? h("button", { class: "danger", onclick: () => cancel(generation) }, "Cancel generation") : "");
    for (const sample of generation.samples.filter((s) => !shown.has(s.id))) {
      shown.add(sample.id);
      samples.append(sampleCard(sample, context));
    }
    if (generation.finished) clearInterval(timer);
  }
  async function refresh() {
    try {
      render(await api.getGeneration(generationId));
    } catch (error) {
      box.show(error);
    }
  }
  async function cancel(generation) {
    if (!confirm(`Cancel the generation of “${generation.prompt}”?`)) return;
    box.clear();
    try { render(await api.cancelGeneration(generationId)); } catch (error) { box.show(error); }
  }
  render(first);
  if (!first.finished) {
    timer = setInterval(refresh, 1000);
    onLeave(() => clearInterval(timer));
  }
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / ", h("a", { href: "#/generate" }, "generate"), " / ", first.prompt),
    heading, facts, actions, box,
    samples);
}
