// Samples: every generated clip, filtered, each with its player, rating, tags and favourite.
import * as api from "./api.js";
import { errorBox, field, h } from "./dom.js";
import { waveform } from "./waveform.js";

const CRITERIA = ["overall", "melody", "rhythm", "sound quality", "prompt match"];

/** One sample with its feedback controls; each control sends one event and shows the answer. */
export function sampleCard(sample) {
  const box = errorBox();
  const tags = h("span", { class: "tags" });
  const act = async (action) => {
    box.clear();
    try {
      const latest = await action();
      if (latest && latest.tags) drawTags(latest.tags);
    } catch (error) {
      box.show(error);
    }
  };
  const drawTags = (list) => tags.replaceChildren(...list.map((tag) => h("span", { class: "tag" }, tag,
    h("button", { type: "button", class: "link", "aria-label": `remove tag ${tag}`,
      onclick: () => act(() => api.untagSample(sample.id, tag)) }, "×"))));
  drawTags(sample.tags || []);
  const favorite = h("input", { type: "checkbox", checked: Boolean(sample.favorite) });
  favorite.addEventListener("change", () => act(() => api.favoriteSample(sample.id, favorite.checked)));
  const criterion = h("select", { "aria-label": "criterion" }, CRITERIA.map((c) => h("option", { value: c }, c)));
  const stars = [1, 2, 3, 4, 5].map((rating) => h("button", { type: "button", class: "star", "aria-label": `rate ${rating}`,
    onclick: () => act(() => api.rateSample(sample.id, { rating, criterion: criterion.value })) }, String(rating)));
  const tagInput = h("input", { placeholder: "add a tag", "aria-label": "tag" });
  const tagForm = h("form", { class: "tag-form" }, tagInput, h("button", { type: "submit" }, "Tag"));
  tagForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const tag = tagInput.value.trim();
    if (tag) act(() => api.tagSample(sample.id, tag)).then(() => { tagInput.value = ""; });
  });
  return h("li", { class: "sample" },
    h("p", { class: "prompt" }, sample.prompt || ""),
    waveform(api.sampleAudioUrl(sample.id), sample.prompt || sample.id),
    h("div", { class: "feedback" },
      h("label", { class: "check" }, favorite, "favourite"),
      criterion, stars, tagForm, tags),
    box);
}

export async function samplesPage() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const filter = Object.fromEntries(["q", "tag", "min_rating", "favorite", "adapter_id"].map((k) => [k, params.get(k) || ""]));
  const samples = await api.listSamples(filter);
  const form = h("form", { class: "inline filters" },
    field("Text", h("input", { name: "q", value: filter.q, placeholder: "prompt contains" })),
    field("Tag", h("input", { name: "tag", value: filter.tag })),
    field("Rated at least", h("input", { name: "min_rating", type: "number", min: 1, max: 5, value: filter.min_rating })),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "favorite", value: "true", checked: filter.favorite === "true" }), "favourites"),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams([...new FormData(form)].filter(([, value]) => value !== ""));
    location.hash = `#/samples?${chosen}`;
  });
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / samples"),
    h("h2", {}, "Samples"),
    form,
    samples.length ? h("ul", { class: "items" }, samples.map(sampleCard)) : h("p", { class: "empty" }, "No sample matches."));
}
