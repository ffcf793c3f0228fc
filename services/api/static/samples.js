// Samples: every generated clip, filtered, each with its player, rating, tags and favourite.
import * as api from "./api.js";
import { errorBox, field, h, moreButton } from "./dom.js";
import { madeBy } from "./generate.js";
import { waveform } from "./waveform.js";

/** What a sample card needs besides the sample: adapter names, and the API's rating criteria. */
export async function sampleContext() {
  const [adapters, criteria] = await Promise.all([api.listAdapters(), api.apiEnum("RatingCreate", "criterion")]);
  return { names: Object.fromEntries(adapters.map((a) => [a.id, a.name])), criteria };
}

/** One sample with its feedback controls; each control sends one event and shows the sample as
 * the API answers it (its latest rating per criterion, its tags, whether it is a favourite). */
export function sampleCard(sample, { names, criteria }) {
  const box = errorBox();
  const tags = h("span", { class: "tags" });
  const favorite = h("input", { type: "checkbox" });
  const criterion = h("select", { "aria-label": "criterion" }, criteria.map((c) => h("option", { value: c }, c.replaceAll("_", " "))));
  const stars = [1, 2, 3, 4, 5].map((rating) => h("button", { type: "button", class: "star", "aria-label": `rate ${rating}`,
    onclick: () => act(() => api.rateSample(sample.id, { rating, criterion: criterion.value })) }, String(rating)));
  const tagInput = h("input", { placeholder: "add a tag", "aria-label": "tag" });
  const tagForm = h("form", { class: "tag-form" }, tagInput, h("button", { type: "submit" }, "Tag"));

  function show(latest) {
    sample = latest;
    favorite.checked = sample.favorite;
    const rated = sample.ratings[criterion.value];
    stars.forEach((star, index) => star.setAttribute("aria-pressed", String(index + 1 === rated)));
    tags.replaceChildren(...sample.tags.map((tag) => h("span", { class: "tag" }, tag,
      h("button", { type: "button", class: "link", "aria-label": `remove tag ${tag}`,
        onclick: () => act(() => api.untagSample(sample.id, tag)) }, "×"))));
  }
  async function act(action) {
    box.clear();
    try {
      show(await action());
      return true;
    } catch (error) {
      box.show(error);
      show(sample);
      return false;
    }
  }
  favorite.addEventListener("change", () => act(() => api.favoriteSample(sample.id, favorite.checked)));
  criterion.addEventListener("change", () => show(sample));
  tagForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const tag = tagInput.value.trim();
    if (tag && await act(() => api.tagSample(sample.id, tag))) tagInput.value = "";
  });
  show(sample);
  return h("li", { class: "sample" },
    h("p", { class: "prompt" }, sample.prompt),
    h("p", { class: "facts" }, `${madeBy(sample.adapter_id, sample.base_model, names)} · seed ${sample.seed} · ${sample.duration_seconds.toFixed(1)} s`),
    waveform(sample.audio_url, sample.prompt),
    h("div", { class: "feedback" },
      h("label", { class: "check" }, favorite, "favourite"),
      criterion, h("span", { class: "stars", role: "group", "aria-label": "rating" }, stars), tagForm, tags),
    box);
}

export async function samplesPage() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const filter = Object.fromEntries(["q", "tag", "min_rating", "favorite", "adapter_id"].map((k) => [k, params.get(k) || ""]));
  const [first, context] = await Promise.all([api.listSamples(filter), sampleContext()]);
  const cards = (samples) => samples.map((sample) => sampleCard(sample, context));
  const list = h("ul", { class: "items" }, cards(first.items));
  const form = h("form", { class: "inline filters" },
    field("Prompt contains", h("input", { name: "q", value: filter.q })),
    field("Tag", h("input", { name: "tag", value: filter.tag })),
    field("Overall rating at least", h("input", { name: "min_rating", type: "number", min: 1, max: 5, value: filter.min_rating })),
    field("Made by", h("select", { name: "adapter_id" }, h("option", { value: "" }, "any"),
      Object.entries(context.names).map(([id, name]) => h("option", { value: id, selected: id === filter.adapter_id }, name)))),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "favorite", value: "true", checked: filter.favorite === "true" }), "favourites only"),
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
    first.items.length ? list : h("p", { class: "empty" }, "No sample matches."),
    moreButton("More samples", first.next, api.listPage, (samples) => list.append(...cards(samples))));
}
