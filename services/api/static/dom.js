// Small helpers to build the page without a framework.

/** h("a", {href: "#/"}, "home") — an element with attributes (on* are listeners) and children (arrays of them, nested or not). */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...children.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

/** An element that shows the error of the form it sits in; `show(error)` / `clear()`. */
export function errorBox() {
  const box = h("p", { class: "error", role: "alert", hidden: true });
  box.show = (error) => {
    box.textContent = error.message || String(error);
    box.hidden = false;
  };
  box.clear = () => {
    box.textContent = "";
    box.hidden = true;
  };
  return box;
}

/**
 * Wires a form: on submit clears its error box, disables its button, awaits `action(form)`, and
 * shows what went wrong next to the form (the API's message) or calls `done(result)`.
 */
export function submitting(form, box, action, done) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    box.clear();
    const buttons = form.querySelectorAll("button");
    buttons.forEach((button) => (button.disabled = true));
    try {
      const result = await action(form);
      await done(result);
    } catch (error) {
      box.show(error);
    } finally {
      buttons.forEach((button) => (button.disabled = false));
    }
  });
  return form;
}

export function field(label, input, hint) {
  return h("label", {}, h("span", {}, label), input, hint ? h("small", {}, hint) : null);
}

export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
export const number = (value, digits = 4) => (value === null || value === undefined ? "—" : Number(value).toPrecision(digits));

export function statusBadge(status) {
  return h("span", { class: `status status-${status}` }, status);
}

/** A table that scrolls sideways inside its card instead of widening the page on a phone. */
export function table(headers, rows) {
  return h("div", { class: "table-scroll" },
    h("table", {},
      h("thead", {}, h("tr", {}, headers.map((header) => h("th", {}, header)))),
      h("tbody", {}, rows)));
}

/**
 * Under a list shown a page at a time, a button that reads the page `next` names (`read(next)`
 * answers `{items, next}`) and adds its items (`append(items)`); none when there is no next page,
 * and it goes once the last page is in.
 */
export function moreButton(label, next, read, append) {
  if (!next) return null;
  const box = errorBox();
  const button = h("button", { type: "button" }, label);
  const more = h("div", { class: "actions" }, button, box);
  button.addEventListener("click", async () => {
    box.clear();
    button.disabled = true;
    try {
      const page = await read(next);
      append(page.items);
      next = page.next;
      if (!next) more.remove();
    } catch (error) {
      box.show(error);
    } finally {
      button.disabled = false;
    }
  });
  return more;
}

/** A failed part of a page: the message, and (when the API was unreachable) a button to try again. */
export function failure(error, retry) {
  return h("div", { class: "error", role: "alert" },
    h("span", {}, error.message || String(error)),
    retry ? h("button", { type: "button", class: "retry", onclick: retry }, "Try again") : null);
}

/** How long between two ISO times (or until now), as "1 h 02 min", "3 min 05 s", "42 s". */
export function duration(fromIso, toIso) {
  if (!fromIso) return "—";
  return seconds(((toIso ? new Date(toIso) : new Date()) - new Date(fromIso)) / 1000);
}

export function seconds(total) {
  const s = Math.max(0, Math.round(total));
  const pad = (n) => String(n).padStart(2, "0");
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  return `${s} s`;
}
