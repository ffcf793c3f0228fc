// A dataset built from feedback: a filter over samples (supervised) or over votes and preference
// pairs (preference), its count previewed live before the dataset is created.
import * as api from "./api.js";
import { errorBox, field, h, submitting } from "./dom.js";

function readFilter(form) {
  const e = form.elements;
  const filter = {};
  const text = (name) => e[name].value.trim();
  if (text("adapter_id")) filter.adapter_id = text("adapter_id");
  if (text("min_rating")) filter.min_rating = Number(text("min_rating"));
  if (text("max_rating")) filter.max_rating = Number(text("max_rating"));
  if (text("tags")) filter.tags = text("tags").split(",").map((tag) => tag.trim()).filter(Boolean);
  if (text("q")) filter.q = text("q");
  if (text("since")) filter.since = new Date(text("since")).toISOString();
  if (text("until")) filter.until = new Date(text("until")).toISOString();
  if (e.kind.value === "preference") {
    filter.comparison_ids = [...e.comparison_ids.selectedOptions].map((option) => option.value);
    filter.include_preference_pairs = e.include_preference_pairs.checked;
  }
  return filter;
}

export async function feedbackDatasetPage() {
  const [adapters, comparisons] = await Promise.all([api.listAdapters(), api.listComparisons()]);
  const count = h("output", { class: "preview", "aria-live": "polite" }, "…");
  const box = errorBox();
  const form = h("form", { class: "inline" },
    field("Name", h("input", { name: "name", required: true, placeholder: "e.g. round 2 votes" })),
    field("Kind", h("select", { name: "kind" },
      h("option", { value: "supervised" }, "supervised: the samples that pass the filter"),
      h("option", { value: "preference" }, "preference: winners chosen, losers rejected"))),
    field("Adapter", h("select", { name: "adapter_id" }, h("option", { value: "" }, "any"),
      adapters.map((a) => h("option", { value: a.id }, a.name)))),
    field("Rating from", h("input", { name: "min_rating", type: "number", min: 1, max: 5 })),
    field("Rating to", h("input", { name: "max_rating", type: "number", min: 1, max: 5 })),
    field("Tags (comma separated)", h("input", { name: "tags" })),
    field("Prompt contains", h("input", { name: "q" })),
    field("Since", h("input", { name: "since", type: "date" })),
    field("Until", h("input", { name: "until", type: "date" })),
    field("Comparisons (preference)", h("select", { name: "comparison_ids", multiple: true },
      comparisons.map((c) => h("option", { value: c.id }, c.name)))),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "include_preference_pairs", checked: true }), "include free preference pairs"),
    h("p", { class: "facts" }, "Items: ", count),
    h("button", { type: "submit" }, "Create dataset"),
    box);
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
  form.addEventListener("input", preview);
  form.addEventListener("change", preview);
  preview();
  submitting(form, box,
    (form) => api.createDataset({ name: form.elements.name.value, kind: form.elements.kind.value, from_feedback: readFilter(form) }),
    (dataset) => { location.hash = `#/datasets/${dataset.id}`; });
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / dataset from feedback"),
    h("h2", {}, "Dataset from feedback"),
    form);
}
