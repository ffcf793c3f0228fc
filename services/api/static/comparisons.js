// Comparisons: two sides (adapters or the base model) judged blind, pair by pair, with keyboard
// shortcuts (1 = first, 2 = second, 0 or = = equal), and their results with the 95 % interval.
import * as api from "./api.js";
import { errorBox, field, h, number, statusBadge, submitting, table, when } from "./dom.js";
import { adapterOptions } from "./generate.js";
import { waveform } from "./waveform.js";

const KEYS = { 1: "first", 2: "second", 0: "equal", "=": "equal" };

const sideName = (side, names) => (side.adapter_id ? names[side.adapter_id] || "a deleted adapter" : "base model");

export async function comparisonsPage() {
  const [comparisons, adapters] = await Promise.all([api.listComparisons(), api.listAdapters()]);
  const names = Object.fromEntries(adapters.map((a) => [a.id, a.name]));
  const box = errorBox();
  const form = submitting(
    h("form", { class: "inline" },
      h("h3", {}, "New comparison"),
      field("Name", h("input", { name: "name", required: true }), "e.g. round 2 against the base model"),
      field("Side A", h("select", { name: "a" }, adapterOptions(adapters))),
      field("Side B", h("select", { name: "b" }, adapterOptions(adapters))),
      field("Base model", h("input", { name: "base_model" }), "Empty: each adapter's base model, or MusicGen small without one"),
      field("Prompts, one a line", h("textarea", { name: "prompts", rows: 3, required: true })),
      field("Samples per prompt", h("input", { name: "samples_per_prompt", type: "number", min: 1, max: 8, value: 2, required: true })),
      field("Seconds", h("input", { name: "duration_seconds", type: "number", min: 0.1, max: 120, step: "any", value: 8, required: true })),
      field("Seed", h("input", { name: "seed", type: "number", min: 0, value: 0, required: true }), "Prompt i is generated with seed + i on both sides"),
      h("button", { type: "submit" }, "Create comparison"),
      box),
    box,
    (form) => {
      const e = form.elements;
      return api.createComparison({
        name: e.name.value, a: { adapter_id: e.a.value || null }, b: { adapter_id: e.b.value || null },
        base_model: e.base_model.value.trim() || null,
        prompts: e.prompts.value.split("\n").map((line) => line.trim()).filter(Boolean),
        samples_per_prompt: Number(e.samples_per_prompt.value), duration_seconds: Number(e.duration_seconds.value),
        seed: Number(e.seed.value),
      });
    },
    (comparison) => { location.hash = `#/comparisons/${comparison.id}`; });
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / comparisons"),
    h("h2", {}, "Comparisons"),
    comparisons.length
      ? table(["Name", "A", "B", "Status", "Voted", "Created"], comparisons.map((c) => h("tr", {},
          h("td", {}, h("a", { href: `#/comparisons/${c.id}` }, c.name)),
          h("td", {}, sideName(c.a, names)),
          h("td", {}, sideName(c.b, names)),
          h("td", {}, statusBadge(c.status)),
          h("td", {}, `${c.pairs_voted} of ${c.pairs_total}`),
          h("td", {}, when(c.created_at)))))
      : h("p", { class: "empty" }, "No comparison yet."),
    form);
}

const percent = (fraction) => `${(100 * fraction).toFixed(0)} %`;

function results(r, a, b) {
  if (!r.votes) return h("p", { class: "empty" }, "No votes yet.");
  return h("dl", { class: "results" },
    h("dt", {}, "Votes"), h("dd", {}, String(r.votes)),
    h("dt", {}, `${a} wins / ${b} wins / equal`), h("dd", {}, `${r.a_wins} / ${r.b_wins} / ${r.ties}`),
    h("dt", {}, `${a}'s win rate`), h("dd", { class: "win-rate" }, r.a_win_rate === null
      ? "— (no vote picked a side yet)"
      : `${percent(r.a_win_rate)} (95 % interval ${percent(r.a_win_rate_ci[0])} to ${percent(r.a_win_rate_ci[1])})`),
    h("dt", {}, "Sign test p"), h("dd", {}, r.p_value === null ? "—" : number(r.p_value, 3)));
}

export async function comparisonPage(comparisonId, onLeave) {
  const [comparison, adapters] = await Promise.all([api.getComparison(comparisonId), api.listAdapters()]);
  const names = Object.fromEntries(adapters.map((a) => [a.id, a.name]));
  const [a, b] = [sideName(comparison.a, names), sideName(comparison.b, names)];
  const heading = h("h2");
  const progress = h("p", { class: "facts" });
  const resultsSlot = h("div");
  const pairSlot = h("div", { class: "pair-vote" });
  const box = errorBox();
  let pair = null;
  let timer = null;

  async function refresh() {
    const [latest, latestResults] = await Promise.all([api.getComparison(comparisonId), api.comparisonResults(comparisonId)]);
    heading.replaceChildren(latest.name, " ", statusBadge(latest.status));
    progress.replaceChildren(`A: ${a} · B: ${b} · ${latest.pairs_ready} of ${latest.pairs_total} pairs generated, ${latest.pairs_voted} voted`);
    resultsSlot.replaceChildren(results(latestResults, a, b));
    return latest;
  }

  // Blind: the samples are "first" and "second" in the order the comparison recorded for the pair;
  // which side made which is not shown until the results.
  async function showNextPair() {
    pair = await api.nextPair(comparisonId);
    const latest = await refresh();
    if (!pair) {
      const waiting = latest.pairs_ready < latest.pairs_total;
      pairSlot.replaceChildren(h("p", { class: "empty" }, waiting
        ? "The next pair is still being generated; it appears here when it is ready."
        : "Every pair is voted."));
      if (waiting && !timer) timer = setInterval(() => showNextPair().catch((error) => box.show(error)), 2000);
      return;
    }
    clearInterval(timer);
    timer = null;
    pairSlot.replaceChildren(
      h("p", { class: "prompt" }, pair.prompt),
      h("div", { class: "sides" },
        h("div", {}, h("strong", {}, "First (1)"), waveform(pair.first_audio_url, "first")),
        h("div", {}, h("strong", {}, "Second (2)"), waveform(pair.second_audio_url, "second"))),
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: () => cast("first") }, "First is better (1)"),
        h("button", { type: "button", onclick: () => cast("equal") }, "Equal (0 or =)"),
        h("button", { type: "button", onclick: () => cast("second") }, "Second is better (2)")));
  }

  async function cast(choice) {
    if (!pair) return;
    box.clear();
    const voted = pair;
    pair = null;  // a second key press before the answer does not vote twice
    try {
      await api.vote(comparisonId, { pair_id: voted.pair_id, choice });
      await showNextPair();
    } catch (error) {
      pair = voted;
      box.show(error);
    }
  }

  const onKey = (event) => {
    if (event.target.closest("input, textarea, select") || event.ctrlKey || event.metaKey || event.altKey) return;
    if (KEYS[event.key]) cast(KEYS[event.key]);
  };
  document.addEventListener("keydown", onKey);
  onLeave(() => {
    document.removeEventListener("keydown", onKey);
    clearInterval(timer);
  });
  await showNextPair();
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / ", h("a", { href: "#/comparisons" }, "comparisons"), " / ", comparison.name),
    heading,
    progress,
    h("h3", {}, "Vote"),
    h("p", { class: "facts" }, "Listen to both, then press 1 if the first is better, 2 if the second is, 0 or = if they are equal."),
    pairSlot,
    box,
    h("h3", {}, "Results"),
    resultsSlot);
}
