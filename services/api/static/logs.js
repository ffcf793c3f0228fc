// A run's log as a person reads it: a progress bar redrawn with carriage returns is one line that
// updates in place, warnings are listed apart, and the model CLI's JSON protocol lines (already
// shown as the chart, checkpoints and timeline) are left out.
import { h } from "./dom.js";

// tqdm's bar: "…| 12/40 [00:03<00:07, 3.9it/s]" or " 30%|███".
const PROGRESS_BAR = /\d+%\||\d+\/\d+ \[[\d:]+</;
const WARNING = /\bwarn(ing)?s?\b|deprecat/i;

function isProtocol(line) {
  if (!line.startsWith("{")) return false;
  try {
    return typeof JSON.parse(line) === "object";
  } catch {
    return false;
  }
}

export function logView() {
  const log = h("pre", { class: "log" });
  const warnings = h("ul", { class: "warnings" });
  const warningsBox = h("details", { class: "warnings-box", hidden: true },
    h("summary", {}, "Warnings"), warnings);
  let lastWasBar = false;

  function add(lines) {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    for (const raw of lines) {
      // Of a line redrawn with "\r", what the terminal would show is its last drawing.
      const line = raw.split("\r").filter((part) => part.trim() !== "").pop() ?? "";
      if (line === "" || isProtocol(line)) continue;
      if (WARNING.test(line)) {
        warnings.append(h("li", {}, line));
        warningsBox.hidden = false;
        warningsBox.querySelector("summary").textContent = `Warnings (${warnings.children.length})`;
        continue;
      }
      const bar = PROGRESS_BAR.test(line);
      if (bar && lastWasBar) log.lastChild.textContent = line + "\n";
      else log.append(h("span", {}, line + "\n"));
      lastWasBar = bar;
    }
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  return {
    element: h("div", {}, warningsBox, log),
    add,
    scrollToEnd() { log.scrollTop = log.scrollHeight; },
  };
}
