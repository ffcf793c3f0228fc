// Adapters: every trained adapter, and one adapter with its lineage back through its run and
// dataset to the samples and comparison votes it learned from, and the adapters that made them.
import * as api from "./api.js";
import { h, number, statusBadge, table, when } from "./dom.js";

export async function adaptersPage() {
  const adapters = await api.listAdapters();
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / adapters"),
    h("h2", {}, "Adapters"),
    adapters.length
      ? table(["Name", "Type", "Final loss", "Base model", "Created"], adapters.map((a) => h("tr", {},
          h("td", {}, h("a", { href: `#/adapters/${a.id}` }, a.name)),
          h("td", {}, a.dataset_type),
          h("td", {}, number(a.final_loss)),
          h("td", {}, a.base_model),
          h("td", {}, when(a.created_at)))))
      : h("p", { class: "empty" }, "No adapter yet: a completed run saves one."));
}

/** What a dataset drawn from feedback took: "12 samples (…)" and/or "3 votes of round 2". */
function drawnFrom(dataset) {
  if (dataset.filter === null) return h("li", {}, "uploaded clips and pairs");
  const prompts = [...new Set(dataset.samples.map((sample) => `“${sample.prompt}”`))];
  return [
    dataset.samples.length ? h("li", {}, `${dataset.samples.length} samples, of ${prompts.join(", ")}`) : null,
    dataset.comparisons.map((c) => h("li", {},
      `${c.votes_taken} ${c.votes_taken === 1 ? "vote" : "votes"} of comparison `,
      h("a", { href: `#/comparisons/${c.id}` }, c.name))),
  ];
}

/** One adapter's lineage, and below it (indented) the lineages of the adapters it learned from. */
function lineageTree(lineage) {
  const { run } = lineage;
  return h("li", { class: "lineage-node" },
    h("p", {}, h("span", { class: "kind" }, "adapter"), " ", h("a", { href: `#/adapters/${lineage.adapter_id}` }, lineage.name),
      ` on ${lineage.base_model}`),
    h("p", {}, h("span", { class: "kind" }, "run"), " ", h("a", { href: `#/runs/${run.id}` }, run.name), " ", statusBadge(run.status)),
    h("p", {}, h("span", { class: "kind" }, `${run.dataset.kind} dataset`), " ", h("a", { href: `#/datasets/${run.dataset.id}` }, run.dataset.name)),
    h("ul", { class: "drawn" }, drawnFrom(run.dataset)),
    lineage.learned_from.length || lineage.learned_from_base_model
      ? h("div", {}, h("p", { class: "facts" }, "learned from samples of:"),
          h("ul", { class: "lineage" },
            lineage.learned_from.map(lineageTree),
            lineage.learned_from_base_model ? h("li", { class: "lineage-node" }, h("span", { class: "kind" }, "base model"), " alone") : null))
      : null);
}

export async function adapterPage(adapterId) {
  const [adapter, lineage] = await Promise.all([api.getAdapter(adapterId), api.adapterLineage(adapterId)]);
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / ", h("a", { href: "#/adapters" }, "adapters"), " / ", adapter.name),
    h("h2", {}, adapter.name, " ", h("span", { class: "kind" }, adapter.dataset_type)),
    h("dl", { class: "summary-list" },
      h("dt", {}, "Run"), h("dd", {}, h("a", { href: `#/runs/${adapter.run_id}` }, lineage.run.name)),
      h("dt", {}, "Base model"), h("dd", {}, adapter.base_model),
      h("dt", {}, "Final loss"), h("dd", {}, number(adapter.final_loss)),
      h("dt", {}, "LoRA"), h("dd", {}, h("code", {}, JSON.stringify(adapter.lora_config))),
      h("dt", {}, "Created"), h("dd", {}, when(adapter.created_at))),
    h("p", {},
      h("a", { class: "button", href: `#/generate?adapter=${adapter.id}` }, "Generate with it"), " ",
      h("a", { href: api.adapterDownloadUrl(adapter.id), download: true }, "download (zip)")),
    h("h3", {}, "Lineage"),
    h("ul", { class: "lineage" }, lineageTree(lineage)));
}
