// Comparisons: two sides (adapters or the base model) judged blind, pair by pair, with keyboard
// shortcuts (1 = first, 2 = second, 0 or = = equal), and their results with the 95 % interval.
import * as api from "./api.js";
import { errorBox, failure, field, h, number, statusBadge, submitting, table, when } from "./dom.js";
import { adapterOptions } from "./generate.js";
import { waveform } from "./waveform.js";

export async function comparisonsPage() {
  const [comparisons, adapters] = await Promise.all([api.listComparisons(), api.listAdapters()]);
  const box = errorBox();
  const form = submitting(
    h("form", { class: "inline" },
      h("h3", {}, "New comparison"),
      field("Name", h("input", { name: "name", required: true, placeholder: "e.g. round 2 vs base" })),
      field("Side A", h("select", { name: "a" }, adapterOptions(adapters))),
      field("Side B", h("select", { name: "b" }, adapterOptions(adapters))),
      field("Prompts, one a line", h("textarea", { name: "prompts", rows: 3, required: true })),
      field("Samples per prompt", h("input", { name: "samples_per_prompt", type: "number", min: 1, max: 8, value: 2 })),
      field("Seed", h("input", { name: "seed", type: "number", value: 0 })),
      h("button", { type: "submit" }, "Create comparison"),
      box),
    box,
    (form) => {
      const e = form.elements;
      return api.createComparison({
        name: e.name.value, a: { adapter_id: e.a.value || null }, b: { adapter_id: e.b.value || null },
        prompts: e.prompts.value.split("\n").map((line) => line.trim()).filter(Boolean),
        samples_per_prompt: Number(e.samples_per_prompt.value), seed: Number(e.seed.value),
      });
    },
    (comparison) => { location.hash = `#/comparisons/${comparison.id}`; });
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / comparisons"),
    h("h2", {}, "Comparisons"),
    comparisons.length
      ? table(["Name", "Status", "Voted", "Created"], comparisons.map((c) => h("tr", {},
          h("td", {}, h("a", { href: `#/comparisons/${c.id}` }, c.name)),
          h("td", {}, statusBadge(c.status)),
          h("td", {}, `${c.pairs_voted ?? 0} of ${c.pairs_ready ?? 0}`),
          h("td", {}, when(c.created_at)))))
      : h("p", { class: "empty" }, "No comparison yet."),
    form);
}

function results(r) {
  if (!r || !r.votes) return h("p", { class: "empty" }, "No votes yet.");
  const [low, high] = r.a_win_rate_ci || [null, null];
  return h("dl", { class: "results" },
    h("dt", {}, "Votes"), h("dd", {}, String(r.votes)),
    h("dt", {}, "A wins / B wins / ties"), h("dd", {}, `${r.a_wins} / ${r.b_wins} / ${r.ties}`),
    h("dt", {}, "A's win rate"), h("dd", {}, `${(100 * r.a_win_rate).toFixed(0)} % (95 % interval ${(100 * low).toFixed(0)}–${(100 * high).toFixed(0)} %)`),
    h("dt", {}, "Sign test p"), h("dd", {}, number(r.p_value, 3)));
}

export async function comparisonPage(main, comparisonId, onLeave) {
  const comparison = await api.getComparison(comparisonId);
  const resultsSlot = h("div", {}, results(await api.comparisonResults(comparisonId)));
  const pairSlot = h("div", { class: "pair-vote" });
  const box = errorBox();
  let pair = null;

  async function nextPair() {
    pair = await api.nextPair(comparisonId);
    if (!pair) {
      pairSlot.replaceChildren(h("p", { class: "empty" }, "No pair waiting for a vote (the rest may still be generating)."));
      return;
    }
    // Blind: the sides are "first" and "second" in the order the comparison recorded.
    pairSlot.replaceChildren(
      h("div", { class: "sides" },
        h("div", {}, h("strong", {}, "First (1)"), waveform(api.sampleAudioUrl(pair.first_sample_id), "first")),
        h("div", {}, h("strong", {}, "Second (2)"), waveform(api.sampleAudioUrl(pair.second_sample_id), "second"))),
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: () => cast("first") }, "First is better (1)"),
        h("button", { type: "button", onclick: () => cast("equal") }, "Equal (0)"),
        h("button", { type: "button", onclick: () => cast("second") }, "Second is better (2)")));
  }

  async function cast(choice) {
    if (!pair) return;
    box.clear();
    const voted = pair;
    pair = null;  // a second key press before the answer does not vote twice
    try {
      await api.vote(comparisonId, { pair_id: voted.pair_id, choice });
      resultsSlot.replaceChildren(results(await api.comparisonResults(comparisonId)));
      await nextPair();
    } catch (error) {
      pair = voted;
      box.show(error);
    }
  }

  const onKey = (event) => {
    if (event.target.closest("input, textarea, select")) return;
    const choice = { 1: "first", 2: "second", 0: "equal", "=": "equal" }[event.key];
    if (choice) cast(choice);
  };
  document.addEventListener("keydown", onKey);
  onLeave(() => document.removeEventListener("keydown", onKey));
  await nextPair().catch((error) => pairSlot.replaceChildren(failure(error, nextPair)));
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / ", h("a", { href: "#/comparisons" }, "comparisons"), " / ", comparison.name),
    h("h2", {}, comparison.name, " ", statusBadge(comparison.status)),
    h("p", { class: "facts" }, `${comparison.pairs_voted ?? 0} of ${comparison.pairs_ready ?? 0} ready pairs voted`),
    h("h3", {}, "Vote"),
    pairSlot,
    box,
    h("h3", {}, "Results"),
    resultsSlot);
}
