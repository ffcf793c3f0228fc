// Datasets: the list, creating one, and one dataset's clips or preference pairs (listen, upload).
import * as api from "./api.js";
import { errorBox, field, h, submitting, when } from "./dom.js";

export async function datasetsSection() {
  const datasets = await api.listDatasets();
  const box = errorBox();
  const form = submitting(
    h("form", { class: "inline" },
      field("Name", h("input", { name: "name", required: true, placeholder: "lofi piano" })),
      field("Kind", h("select", { name: "kind" },
        h("option", { value: "supervised" }, "supervised (prompt + audio)"),
        h("option", { value: "preference" }, "preference (prompt + chosen + rejected)"))),
      field("Description", h("input", { name: "description", placeholder: "optional" })),
      h("button", { type: "submit" }, "Create dataset"),
      box),
    box,
    (form) => api.createDataset({
      name: form.elements.name.value,
      kind: form.elements.kind.value,
      description: form.elements.description.value,
    }),
    (dataset) => { location.hash = `#/datasets/${dataset.id}`; },
  );
  return h("section", {},
    h("h2", {}, "Datasets"),
    datasets.length
      ? h("table", {},
          h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Kind"), h("th", {}, "Items"), h("th", {}, "Created"))),
          h("tbody", {}, datasets.map((d) => h("tr", {},
            h("td", {}, h("a", { href: `#/datasets/${d.id}` }, d.name)),
            h("td", {}, d.kind),
            h("td", {}, d.kind === "preference" ? `${d.pair_count} pairs` : `${d.clip_count} clips`),
            h("td", {}, when(d.created_at))))))
      : h("p", { class: "empty" }, "No dataset yet: create one, then upload audio to it."),
    form);
}

function player(clip) {
  return h("audio", { controls: true, preload: "none", src: api.clipAudioUrl(clip.id), title: clip.filename });
}

function clipFacts(clip) {
  return h("small", { class: "facts" },
    `${clip.filename} · ${clip.format} · ${clip.duration_seconds.toFixed(1)} s · ${clip.sample_rate} Hz`);
}

function uploadForm(dataset, rerender) {
  const box = errorBox();
  const audio = (name) => h("input", { type: "file", name, accept: "audio/*", required: true });
  const supervised = dataset.kind === "supervised";
  const form = h("form", { class: "upload" },
    h("h3", {}, supervised ? "Add a clip" : "Add a preference pair"),
    field("Prompt", h("input", { name: "prompt", required: true, placeholder: "calm lofi piano with vinyl crackle" })),
    supervised
      ? field("Audio", audio("file"), "WAV, FLAC, OGG or MP3")
      : [field("Chosen (preferred)", audio("chosen")), field("Rejected (liked less)", audio("rejected"))],
    h("button", { type: "submit" }, "Upload"),
    box);
  return submitting(form, box,
    (form) => (supervised ? api.addClip : api.addPair)(dataset.id, new FormData(form)),
    rerender);
}

export async function datasetPage(main, datasetId) {
  const dataset = await api.getDataset(datasetId);
  const rerender = async () => main.replaceChildren(await datasetPage(main, datasetId));
  const items = dataset.kind === "supervised"
    ? dataset.clips.map((clip) => h("li", { class: "clip" },
        h("p", { class: "prompt" }, clip.prompt), player(clip), clipFacts(clip)))
    : dataset.pairs.map((pair) => h("li", { class: "pair" },
        h("p", { class: "prompt" }, pair.prompt),
        h("div", { class: "sides" },
          h("div", {}, h("strong", { class: "chosen" }, "chosen"), player(pair.chosen), clipFacts(pair.chosen)),
          h("div", {}, h("strong", { class: "rejected" }, "rejected"), player(pair.rejected), clipFacts(pair.rejected)))));
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / dataset"),
    h("h2", {}, dataset.name, " ", h("span", { class: "kind" }, dataset.kind)),
    dataset.description ? h("p", {}, dataset.description) : null,
    h("p", { class: "facts" },
      dataset.kind === "supervised" ? `${dataset.clip_count} clips` : `${dataset.pair_count} pairs`,
      " · created ", when(dataset.created_at), " · ",
      h("a", { href: api.exportUrl(dataset.id), download: true }, "export JSONL")),
    items.length ? h("ul", { class: "items" }, items) : h("p", { class: "empty" }, "Nothing uploaded yet."),
    uploadForm(dataset, rerender));
}
