// Building DOM from text nodes only: what the API says is never parsed as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** A table with a caption; `rows` are arrays of cells (strings or nodes). */
export function table(caption, headers, rows, { id, empty = "Nothing to show." } = {}) {
  if (!rows.length) return h("p", { class: "empty", id }, empty);
  return h(
    "div",
    { class: "table-wrap", id },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        rows.map((cells) =>
          h(
            "tr",
            {},
            cells.map((c, i) => (i === 0 ? h("th", { scope: "row" }, c) : h("td", {}, c))),
          ),
        ),
      ),
    ),
  );
}

export function badge(state) {
  const text = state === null || state === undefined ? "unknown" : String(state);
  return h("span", { class: `badge badge-${text.replace(/[^a-z_]/gi, "")}` }, text);
}

export function when(value) {
  if (!value) return "-";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toISOString().replace(".000Z", "Z");
}

export function yesNo(value) {
  if (value === true) return "on";
  if (value === false) return "off";
  return "not managed";
}

export function link(href, text, attrs = {}) {
  return h("a", { href, ...attrs }, text);
}
