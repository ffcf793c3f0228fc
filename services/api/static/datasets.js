// Datasets: the list, creating one, and one dataset's clips or preference pairs (listen, upload
// several at once, import a JSONL/CSV manifest in the export's format).
import * as api from "./api.js";
import { errorBox, field, h, submitting, table, when } from "./dom.js";
import { waveform } from "./waveform.js";

const plural = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;
const itemCount = (d) => (d.kind === "preference" ? plural(d.pair_count, "pair") : plural(d.clip_count, "clip"));

export async function datasetsSection() {
  const datasets = await api.listDatasets();
  const box = errorBox();
  const form = submitting(
    h("form", { class: "inline" },
      field("Name", h("input", { name: "name", required: true }), "e.g. lofi piano"),
      field("Kind", h("select", { name: "kind" },
        h("option", { value: "supervised" }, "supervised (prompt + audio)"),
        h("option", { value: "preference" }, "preference (prompt + chosen + rejected)"))),
      field("Description", h("input", { name: "description" }), "Optional"),
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
      ? table(["Name", "Kind", "Items", "Created"], datasets.map((d) => h("tr", {},
          h("td", {}, h("a", { href: `#/datasets/${d.id}` }, d.name)),
          h("td", {}, d.kind),
          h("td", {}, itemCount(d)),
          h("td", {}, when(d.created_at)))))
      : h("p", { class: "empty" }, "No dataset yet: create one, then upload audio to it."),
    form,
    h("p", {}, h("a", { href: "#/datasets/new-from-feedback" }, "Build a dataset from ratings and votes")));
}

function clipFacts(clip) {
  return h("small", { class: "facts" },
    `${clip.filename} · ${clip.format} · ${clip.duration_seconds.toFixed(1)} s · ${clip.sample_rate} Hz`);
}

const player = (clip) => waveform(api.clipAudioUrl(clip.id), clip.filename);

/** A Remove button that asks first, then removes the item and calls `removed()` (or shows why not). */
function removeButton(what, remove, removed) {
  const box = errorBox();
  const button = h("button", {
    type: "button", class: "danger",
    onclick: async () => {
      // Runs requested earlier keep training on it; runs requested from now on do without.
      if (!confirm(`Remove ${what} from the dataset? Runs requested from now on will not train on it.`)) return;
      box.clear();
      button.disabled = true;
      try {
        await remove();
        await removed();
      } catch (error) {
        button.disabled = false;
        box.show(error);
      }
    },
  }, "Remove");
  return h("div", { class: "remove" }, button, box);
}

function items(dataset, refreshItems) {
  const list = dataset.kind === "supervised"
    ? dataset.clips.map((clip) => h("li", { class: "clip" },
        h("p", { class: "prompt" }, clip.prompt), player(clip), clipFacts(clip),
        removeButton(`the clip “${clip.prompt}”`, () => api.removeClip(dataset.id, clip.id), refreshItems)))
    : dataset.pairs.map((pair) => h("li", { class: "pair" },
        h("p", { class: "prompt" }, pair.prompt),
        h("div", { class: "sides" },
          h("div", {}, h("strong", { class: "chosen" }, "chosen"), player(pair.chosen), clipFacts(pair.chosen)),
          h("div", {}, h("strong", { class: "rejected" }, "rejected"), player(pair.rejected), clipFacts(pair.rejected))),
        removeButton(`the pair “${pair.prompt}”`, () => api.removePair(dataset.id, pair.id), refreshItems)));
  return list.length ? h("ul", { class: "items" }, list) : h("p", { class: "empty" }, "Nothing uploaded yet.");
}

// --- manifests: the export's JSONL, or a CSV with the same columns --------------------------------

const basename = (path) => String(path).split(/[\\/]/).pop();

function parseCsv(text) {
  const rows = [];
  let row = [], cell = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; }
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(cell); cell = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(cell); rows.push(row); row = []; cell = "";
    } else cell += c;
  }
  if (cell !== "" || row.length) { row.push(cell); rows.push(row); }
  const [header, ...body] = rows.filter((r) => r.some((value) => value.trim() !== ""));
  return body.map((values) => Object.fromEntries(header.map((name, i) => [name.trim(), values[i] ?? ""])));
}

/** The rows of a manifest file; a line that is not JSON names its line number. */
async function readManifest(file) {
  const text = await file.text();
  if (file.name.toLowerCase().endsWith(".csv")) return parseCsv(text);
  return text.split("\n").map((line, index) => [line.trim(), index + 1]).filter(([line]) => line).map(([line, number]) => {
    try {
      return JSON.parse(line);
    } catch {
      throw new Error(`${file.name}, line ${number}: not a JSON object`);
    }
  });
}

const isManifest = (file) => /\.(jsonl|csv)$/i.test(file.name);

/**
 * The uploads a manifest and the chosen audio files describe: with a manifest, one per row (its
 * files matched by name); without, one clip per audio file with the form's prompt.
 */
function plan(dataset, rows, audioFiles, prompt) {
  const byName = new Map(audioFiles.map((file) => [file.name, file]));
  const file = (path) => byName.get(basename(path));
  if (dataset.kind === "supervised") {
    if (!rows) return audioFiles.map((audio) => ({ label: audio.name, prompt, files: { file: audio } }));
    return rows.map((row) => ({ label: basename(row.audio_path), prompt: row.prompt, files: { file: file(row.audio_path) },
      missing: file(row.audio_path) ? null : basename(row.audio_path) }));
  }
  return (rows || []).map((row) => ({
    label: `${basename(row.chosen_path)} / ${basename(row.rejected_path)}`, prompt: row.prompt,
    files: { chosen: file(row.chosen_path), rejected: file(row.rejected_path) },
    missing: [row.chosen_path, row.rejected_path].filter((path) => !file(path)).map(basename).join(", ") || null,
  }));
}

function uploadForm(dataset, refreshItems) {
  const supervised = dataset.kind === "supervised";
  const box = errorBox();
  let chosen = [];  // the audio files and at most one manifest, from the picker or dropped
  const picked = h("small", {}, "");
  const results = h("ul", { class: "uploads" });
  const fileInput = h("input", { type: "file", name: "files", multiple: true, accept: "audio/*,.jsonl,.csv" });
  const choose = (files) => {
    chosen = [...files];
    const manifests = chosen.filter(isManifest);
    picked.textContent = `${chosen.length - manifests.length} audio files` + (manifests.length ? ` + ${manifests.map((f) => f.name).join(", ")}` : "");
  };
  fileInput.addEventListener("change", () => choose(fileInput.files));
  const dropZone = h("div", { class: "drop-zone" },
    h("p", {}, supervised
      ? "Drop audio files here (WAV, FLAC, OGG, MP3), with a JSONL or CSV manifest for a prompt per file, or "
      : "Drop a JSONL or CSV manifest (prompt, chosen_path, rejected_path) with its audio files here, or "),
    field("choose files", fileInput), picked);
  dropZone.addEventListener("dragover", (event) => { event.preventDefault(); dropZone.classList.add("over"); });
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("over"));
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.classList.remove("over");
    choose(event.dataTransfer.files);
  });

  async function uploadOne(item) {
    const bar = h("progress", { max: 1, value: 0 });
    const status = h("span", { class: "upload-status" }, "waiting");
    const row = h("li", {}, h("span", { class: "upload-name" }, item.label), bar, status);
    results.append(row);
    const fail = (message) => {
      row.classList.add("failed");
      status.textContent = message;
      status.setAttribute("role", "alert");
      bar.remove();
      return false;
    };
    if (item.missing) return fail(`not among the chosen files: ${item.missing}`);
    if (!item.prompt) return fail("no prompt: fill in the prompt, or give one in the manifest");
    const form = new FormData();
    form.append("prompt", item.prompt);
    for (const [name, file] of Object.entries(item.files)) form.append(name, file);
    status.textContent = "uploading";
    try {
      const upload = supervised ? api.addClip : api.addPair;
      await upload(dataset.id, form, (fraction) => { bar.value = fraction; });
      bar.value = 1;
      row.classList.add("done");
      status.textContent = "added";
      return true;
    } catch (error) {
      return fail(error.message);
    }
  }

  const form = h("form", { class: "upload" },
    h("h3", {}, supervised ? "Add clips" : "Add preference pairs"),
    supervised ? field("Prompt", h("input", { name: "prompt" }),
      "For every file the manifest does not give a prompt") : null,
    dropZone,
    h("button", { type: "submit" }, "Upload"),
    box,
    results);
  return submitting(form, box, async () => {
    const manifests = chosen.filter(isManifest);
    const audioFiles = chosen.filter((file) => !isManifest(file));
    if (manifests.length > 1) throw new Error("Choose one manifest (JSONL or CSV) at a time.");
    const rows = manifests.length ? await readManifest(manifests[0]) : null;
    const uploads = plan(dataset, rows, audioFiles, form.elements.prompt ? form.elements.prompt.value.trim() : "");
    if (!uploads.length) throw new Error(supervised ? "Choose or drop audio files first." : "Choose a manifest and its audio files first.");
    results.replaceChildren();
    let added = 0;
    for (const item of uploads) if (await uploadOne(item)) added++;
    if (added) await refreshItems();
    // The first failure is where the eye must go, wherever the list ends on screen.
    const firstFailure = results.querySelector(".failed");
    if (firstFailure) firstFailure.scrollIntoView({ block: "center" });
    chosen = [];
    fileInput.value = "";
    picked.textContent = `${added} of ${uploads.length} added`;
  }, () => {});
}

export async function datasetPage(main, datasetId) {
  const dataset = await api.getDataset(datasetId);
  const countSlot = h("span", {}, itemCount(dataset));
  const itemsSlot = h("div", {});
  const refreshItems = async () => {
    const latest = await api.getDataset(datasetId);
    countSlot.textContent = itemCount(latest);
    itemsSlot.replaceChildren(items(latest, refreshItems));
  };
  itemsSlot.append(items(dataset, refreshItems));
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / ", dataset.name),
    h("h2", {}, dataset.name, " ", h("span", { class: "kind" }, dataset.kind)),
    dataset.description ? h("p", {}, dataset.description) : null,
    h("p", { class: "facts" }, countSlot, " · created ", when(dataset.created_at), " · ",
      h("a", { href: api.exportUrl(dataset.id), download: true }, "export JSONL")),
    itemsSlot,
    uploadForm(dataset, refreshItems));
}
