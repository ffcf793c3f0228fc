// A dataset built from feedback: a filter over samples (supervised) or over comparison votes and
// free preferences (preference), its count previewed live before the dataset is created.
import * as api from "./api.js";
import { errorBox, field, h, submitting } from "./dom.js";

// The filter's fields for one kind are in a fieldset of that kind; the other kind's is disabled
// (and hidden), so its values are neither sent nor refused by the API.
function readFilter(form) {
  const e = form.elements;
  const filter = {};
  const text = (name) => (e[name].matches(":disabled") ? "" : e[name].value.trim());
  if (text("adapter_id")) filter.adapter_id = text("adapter_id");
  if (text("min_rating")) filter.min_rating = Number(text("min_rating"));
  if (text("max_rating")) filter.max_rating = Number(text("max_rating"));
  if (text("tags")) filter.tags = text("tags").split(",").map((tag) => tag.trim()).filter(Boolean);
  if (text("q")) filter.q = text("q");
  if (text("since")) filter.since = new Date(text("since")).toISOString();
  if (text("until")) filter.until = new Date(text("until")).toISOString();
  if (!e.comparison_ids.matches(":disabled")) {
    filter.comparison_ids = [...e.comparison_ids.selectedOptions].map((option) => option.value);
    filter.include_free_pairs = e.include_free_pairs.checked;
  }
  return filter;
}

export async function feedbackDatasetPage() {
  const [adapters, comparisons] = await Promise.all([api.listAdapters(), api.listComparisons()]);
  const count = h("output", { class: "preview", "aria-live": "polite" }, "…");
  const box = errorBox();
  const supervised = h("fieldset", { "data-kind": "supervised" },
    h("legend", {}, "Samples"),
    field("Made by", h("select", { name: "adapter_id" }, h("option", { value: "" }, "any adapter or the base model"),
      adapters.map((a) => h("option", { value: a.id }, a.name)))),
    field("Overall rating from", h("input", { name: "min_rating", type: "number", min: 1, max: 5 })),
    field("Overall rating to", h("input", { name: "max_rating", type: "number", min: 1, max: 5 })),
    field("Tags", h("input", { name: "tags" }), "Comma separated; a sample needs all of them"));
  const preference = h("fieldset", { "data-kind": "preference" },
    h("legend", {}, "Votes"),
    field("Comparisons", h("select", { name: "comparison_ids", multiple: true },
      comparisons.map((c) => h("option", { value: c.id }, c.name))), "Each vote's winner is chosen, its loser rejected; equal votes are left out"),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "include_free_pairs" }), "and the free preferences between samples"));
  const form = h("form", { class: "inline" },
    field("Name", h("input", { name: "name", required: true }), "e.g. round 2 votes"),
    field("Kind", h("select", { name: "kind" },
      h("option", { value: "supervised" }, "supervised: the samples that pass the filter"),
      h("option", { value: "preference" }, "preference: pairs from votes"))),
    supervised,
    preference,
    field("Prompt contains", h("input", { name: "q" })),
    field("Since", h("input", { name: "since", type: "date" })),
    field("Until", h("input", { name: "until", type: "date" })),
    h("p", { class: "facts" }, "It would take ", count, " items now."),
    h("button", { type: "submit" }, "Create dataset"),
    box);
  function showKind() {
    for (const fieldset of [supervised, preference]) {
      const applies = fieldset.dataset.kind === form.elements.kind.value;
      fieldset.hidden = !applies;
      fieldset.disabled = !applies;
    }
  }
  let asked = 0;
  async function preview() {
    const mine = ++asked;  // only the latest answer is shown, whatever order they arrive in
    try {
      const answer = await api.previewDataset({ kind: form.elements.kind.value, filter: readFilter(form) });
      if (mine === asked) count.textContent = String(answer.count);
    } catch (error) {
      if (mine === asked) count.textContent = `— (${error.message})`;
    }
  }
  form.elements.kind.addEventListener("change", showKind);
  form.addEventListener("input", preview);
  form.addEventListener("change", preview);
  showKind();
  preview();
  submitting(form, box,
    (form) => api.createDataset({ name: form.elements.name.value, kind: form.elements.kind.value, from_feedback: readFilter(form) }),
    (dataset) => { location.hash = `#/datasets/${dataset.id}`; });
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / dataset from feedback"),
    h("h2", {}, "Dataset from feedback"),
    form);
}
