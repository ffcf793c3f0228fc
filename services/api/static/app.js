// The page's router: each `#/…` route below is one page; anything else is "not found".
import { adapterPage, adaptersPage } from "./adapters.js";
import { comparisonPage, comparisonsPage } from "./comparisons.js";
import { datasetPage, datasetsSection } from "./datasets.js";
import { experimentPage, experimentsSection } from "./experiments.js";
import { failure, h } from "./dom.js";
import { feedbackDatasetPage } from "./feedback.js";
import { generatePage, generationPage } from "./generate.js";
import { runPage } from "./run.js";
import { comparePage, runsPage, runsSection } from "./runs.js";
import { samplesPage } from "./samples.js";

const main = document.querySelector("main");
let leaving = [];  // what the current page undoes when another is shown (timers, live streams)

/** One section of the home page: a list that fails shows its error in place, the others still show. */
async function settled(section) {
  try {
    return await section();
  } catch (error) {
    const slot = h("section", {}, failure(error, async () => slot.replaceWith(await settled(section))));
    return slot;
  }
}

async function home() {
  const sections = await Promise.all([runsSection, datasetsSection, experimentsSection].map(settled));
  return h("div", { class: "home" }, sections);
}

const ROUTES = [
  [/^#?\/?$/, home],
  [/^#\/datasets\/new-from-feedback$/, () => feedbackDatasetPage()],
  [/^#\/datasets\/([^/]+)$/, (id) => datasetPage(main, id)],
  [/^#\/experiments\/([^/]+)$/, (id, onLeave) => experimentPage(main, id, onLeave)],
  [/^#\/runs$/, () => runsPage()],
  [/^#\/runs\/([^/]+)$/, (id, onLeave) => runPage(main, id, onLeave)],
  [/^#\/compare\/([^/]+)$/, (ids) => comparePage(ids.split(","))],
  [/^#\/generate$/, () => generatePage()],
  [/^#\/generations\/([^/]+)$/, (id, onLeave) => generationPage(id, onLeave)],
  [/^#\/samples$/, () => samplesPage()],
  [/^#\/comparisons$/, () => comparisonsPage()],
  [/^#\/comparisons\/([^/]+)$/, (id, onLeave) => comparisonPage(id, onLeave)],
  [/^#\/adapters$/, () => adaptersPage()],
  [/^#\/adapters\/([^/]+)$/, (id) => adapterPage(id)],
];

function notFound(hash) {
  return h("section", {},
    h("h2", {}, "Not found"),
    h("p", {}, "There is no page at ", h("code", {}, hash), "."),
    h("p", {}, h("a", { href: "#/" }, "Back home")));
}

async function show() {
  leaving.forEach((undo) => undo());
  leaving = [];
  const onLeave = (undo) => leaving.push(undo);
  const hash = location.hash;
  const path = hash.split("?")[0];  // a page's own filters ride after "?" (#/samples?tag=warm)
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  document.querySelectorAll("header nav a").forEach((link) =>
    link.toggleAttribute("aria-current", hash.startsWith(link.getAttribute("href")) && link.getAttribute("href") !== "/docs"));
  main.setAttribute("aria-busy", "true");
  try {
    const match = route ? path.match(route[0]) : null;
    const page = route ? await route[1](decodeURIComponent(match[1] ?? ""), onLeave) : notFound(hash);
    if (hash === location.hash) main.replaceChildren(page);
  } catch (error) {
    main.replaceChildren(h("section", {},
      failure(error, error.unreachable ? show : null),
      h("p", {}, h("a", { href: "#/" }, "Back home"))));
  } finally {
    main.removeAttribute("aria-busy");
  }
}

window.addEventListener("hashchange", show);
show();
