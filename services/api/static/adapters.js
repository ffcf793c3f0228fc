// Adapters: every trained adapter, and one adapter with its lineage back through its run and
// dataset to the feedback and samples (and the adapters that made them) it learned from.
import * as api from "./api.js";
import { h, number, table, when } from "./dom.js";

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

// Each link of the chain names what it is and, where the UI has a page for it, links there.
const PAGES = { adapter: "adapters", run: "runs", dataset: "datasets", experiment: "experiments", comparison: "comparisons", generation: "generations" };

function chainItem(node) {
  const page = PAGES[node.kind];
  const label = node.name || node.prompt || node.kind;
  return h("li", {}, h("span", { class: "kind" }, node.kind), " ",
    page && node.id ? h("a", { href: `#/${page}/${node.id}` }, label) : label,
    node.children && node.children.length ? h("ul", {}, node.children.map(chainItem)) : null);
}

export async function adapterPage(adapterId) {
  const adapter = await api.getAdapter(adapterId);
  let lineage;
  try {
    const answer = await api.adapterLineage(adapterId);
    const nodes = Array.isArray(answer) ? answer : answer.chain || answer.nodes || [answer];
    lineage = h("ul", { class: "lineage" }, nodes.map(chainItem));
  } catch (error) {
    lineage = h("p", { class: "empty" }, `Lineage unavailable: ${error.message}`);
  }
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Home"), " / ", h("a", { href: "#/adapters" }, "adapters"), " / ", adapter.name),
    h("h2", {}, adapter.name, " ", h("span", { class: "kind" }, adapter.dataset_type)),
    h("dl", { class: "summary-list" },
      h("dt", {}, "Run"), h("dd", {}, h("a", { href: `#/runs/${adapter.run_id}` }, "the run that trained it")),
      h("dt", {}, "Experiment"), h("dd", {}, h("a", { href: `#/experiments/${adapter.experiment_id}` }, "its experiment")),
      h("dt", {}, "Base model"), h("dd", {}, adapter.base_model),
      h("dt", {}, "Final loss"), h("dd", {}, number(adapter.final_loss)),
      h("dt", {}, "LoRA"), h("dd", {}, h("code", {}, JSON.stringify(adapter.lora_config))),
      h("dt", {}, "Created"), h("dd", {}, when(adapter.created_at))),
    h("p", {},
      h("a", { class: "button", href: `#/generate?adapter=${adapter.id}` }, "Generate with it"), " ",
      h("a", { href: api.adapterDownloadUrl(adapter.id), download: true }, "download (zip)")),
    h("h3", {}, "Lineage"),
    lineage);
}
