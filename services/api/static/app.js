// The page's router: `#/`, `#/datasets/<id>`, `#/experiments/<id>`, `#/runs/<id>`.
import { datasetPage, datasetsSection } from "./datasets.js";
import { experimentPage, experimentsSection } from "./experiments.js";
import { h } from "./dom.js";
import { runPage } from "./run.js";

const main = document.querySelector("main");
let leaving = [];  // what the current page undoes when another is shown (timers, live streams)

async function home() {
  const [datasets, experiments] = await Promise.all([datasetsSection(), experimentsSection()]);
  return h("div", { class: "home" }, datasets, experiments);
}

const ROUTES = [
  [/^#\/datasets\/([^/]+)$/, (id) => datasetPage(main, id)],
  [/^#\/experiments\/([^/]+)$/, (id, onLeave) => experimentPage(main, id, onLeave)],
  [/^#\/runs\/([^/]+)$/, (id, onLeave) => runPage(main, id, onLeave)],
];

async function show() {
  leaving.forEach((undo) => undo());
  leaving = [];
  const onLeave = (undo) => leaving.push(undo);
  const hash = location.hash;
  const route = ROUTES.find(([pattern]) => pattern.test(hash));
  main.setAttribute("aria-busy", "true");
  try {
    const page = route ? await route[1](decodeURIComponent(hash.match(route[0])[1]), onLeave) : await home();
    if (hash === location.hash) main.replaceChildren(page);
  } catch (error) {
    main.replaceChildren(h("section", {},
      h("p", { class: "error", role: "alert" }, error.message || String(error)),
      h("p", {}, h("a", { href: "#/" }, "Back home"))));
  } finally {
    main.removeAttribute("aria-busy");
  }
}

window.addEventListener("hashchange", show);
show();
