// Generation: a form for a request (base model or an adapter), and a request's status with its
// samples as they arrive.
import * as api from "./api.js";
import { errorBox, failure, field, h, statusBadge, submitting, table, when } from "./dom.js";
import { sampleCard } from "./samples.js";

const FINISHED = ["completed", "failed", "cancelled"];

export function adapterOptions(adapters, selected) {
  return [h("option", { value: "" }, "base model (no adapter)"),
    adapters.map((a) => h("option", { value: a.id, selected: a.id === selected }, a.name))];
}

const numberOrNull = (input) => (input.value.trim() === "" ? null : Number(input.value));

export async function generatePage() {
  const preselected = new URLSearchParams(location.hash.split("?")[1] || "").get("adapter");
  const [adapters, generations] = await Promise.all([api.listAdapters(), api.listGenerations()]);
  const names = Object.fromEntries(adapters.map((a) => [a.id, a.name]));
  const box = errorBox();
  const form = submitting(
    h("form", { class: "inline" },
      field("Prompt", h("input", { name: "prompt", required: true, placeholder: "e.g. warm lofi piano, vinyl crackle" })),
      field("Adapter", h("select", { name: "adapter_id" }, adapterOptions(adapters, preselected))),
      field("Seconds", h("input", { name: "duration_seconds", type: "number", min: 1, max: 30, step: "any", value: 5 })),
      field("Samples", h("input", { name: "num_samples", type: "number", min: 1, max: 8, value: 2 })),
      field("Seed", h("input", { name: "seed", type: "number", placeholder: "random" })),
      field("Guidance", h("input", { name: "guidance_scale", type: "number", step: "any", placeholder: "default: 3" })),
      field("Temperature", h("input", { name: "temperature", type: "number", step: "any", placeholder: "default: 1" })),
      field("Top-k", h("input", { name: "top_k", type: "number", placeholder: "default: 250" })),
      field("Top-p", h("input", { name: "top_p", type: "number", step: "any", placeholder: "default: 0" })),
      h("button", { type: "submit" }, "Generate"),
      box),
    box,
    (form) => {
      const e = form.elements;
      const body = { prompt: e.prompt.value, adapter_id: e.adapter_id.value || null,
        duration_seconds: Number(e.duration_seconds.value), num_samples: Number(e.num_samples.value) };
      for (const name of ["seed", "guidance_scale", "temperature", "top_k", "top_p"]) {
        const value = numberOrNull(e[name]);
        if (value !== null) body[name] = value;
      }
      return api.requestGeneration(body);
    },
    (generation) => { location.hash = `#/generations/${generation.id}`; });
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / generate"),
    h("h2", {}, "Generate"),
    form,
    h("h3", {}, "Recent generations"),
    generations.length
      ? table(["Prompt", "Adapter", "Status", "Requested"], generations.map((g) => h("tr", {},
          h("td", {}, h("a", { href: `#/generations/${g.id}` }, g.prompt)),
          h("td", {}, g.adapter_id ? names[g.adapter_id] || "adapter" : "base model"),
          h("td", {}, statusBadge(g.status)),
          h("td", {}, when(g.requested_at)))))
      : h("p", { class: "empty" }, "Nothing generated yet."));
}

/** One generation request, refreshed until it finishes; its samples with players and feedback. */
export async function generationPage(generationId, onLeave) {
  const body = h("div");
  const box = errorBox();
  let timer = null;
  async function render() {
    const generation = await api.getGeneration(generationId);
    const active = !FINISHED.includes(generation.status);
    body.replaceChildren(
      h("h2", {}, generation.prompt, " ", statusBadge(generation.status)),
      generation.error ? h("p", { class: "error" }, generation.error) : null,
      active ? h("button", { class: "danger", onclick: async () => {
        if (!confirm("Cancel this generation?")) return;
        try { await api.cancelGeneration(generationId); await render(); } catch (error) { box.show(error); }
      } }, "Cancel") : null,
      box,
      h("ul", { class: "items" }, (generation.samples || []).map((sample) => sampleCard(sample))));
    if (!active && timer) clearInterval(timer);
    return active;
  }
  if (await render()) {
    timer = setInterval(() => render().catch((error) => body.replaceChildren(failure(error, render))), 2000);
    onLeave(() => clearInterval(timer));
  }
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / ", h("a", { href: "#/generate" }, "generate"), " / generation"),
    body);
}
