// Routes and lists of the Berth dashboard: which page the URL's hash names
// (so pages can be linked to, reloaded, and walked with back and forward),
// and the filtered, paged lists that keep a page fast with 10,000 rows.
"use strict";

// Routes, as the hash spells them:
//   #/                                   overview: everything at a glance
//   #/services, #/tasks, #/nodes, #/events   one list, ?q=FILTER&page=N
//   #/services/NAMESPACE/APP/SERVICE     a service
//   #/nodes/NODE                         a node
//   #/images                             images, scans, registries
//   #/exec/NAMESPACE/TASK-ID?cmd=sh      a terminal in a task
function parseRoute(hash) {
  const h = String(hash || "").replace(/^#\/?/, "");
  const q = h.indexOf("?");
  const path = q >= 0 ? h.slice(0, q) : h;
  const params = new URLSearchParams(q >= 0 ? h.slice(q + 1) : "");
  const parts = path.split("/").filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch (e) { return p; }
  });
  const r = { view: "overview", params };
  switch (parts[0]) {
    case undefined: return r;
    case "services":
      if (parts.length >= 4) return { ...r, view: "service", ns: parts[1], app: parts[2], service: parts[3] };
      return { ...r, view: "services" };
    case "nodes":
      if (parts.length >= 2) return { ...r, view: "node", node: parts[1] };
      return { ...r, view: "nodes" };
    case "tasks": case "events": case "images":
      return { ...r, view: parts[0] };
    case "exec":
      if (parts.length >= 3) return { ...r, view: "exec", ns: parts[1], task: parts[2] };
  }
  return { ...r, unknown: "#/" + path };
}

// href builds a route's hash from its parts, each escaped.
function href(...parts) { return "#/" + parts.map((p) => encodeURIComponent(p)).join("/"); }

function serviceHref(ns, app, service) { return href("services", ns || "default", app, service); }
function nodeHref(name) { return href("nodes", name); }
function execHref(ns, taskId) { return href("exec", ns || "default", taskId); }

// LISTED_VIEWS are the routes of one list, whose filter and page the URL
// keeps.
const LISTED_VIEWS = new Set(["services", "tasks", "nodes", "events"]);

// PagedList draws the rows of a list that match its filter box, a page at
// a time: only the rows on screen are made, so 10,000 tasks cost what 50
// do. The filter keeps the items whose text holds every word typed, and a
// word KEY=VALUE matches the item's own key=value words (state=running,
// node=alpha).
class PagedList {
  constructor(name, pageSize) {
    this.name = name;
    this.pageSize = pageSize;
    this.filter = "";
    this.page = 0;
    // shown is how many items matched at the last render.
    this.shown = 0;
  }

  // bind wires the list's filter box and pager, found by data-filter and
  // data-pager attributes naming the list, to onChange.
  bind(onChange) {
    for (const input of document.querySelectorAll(`input[data-filter="${this.name}"]`)) {
      input.addEventListener("input", () => {
        this.filter = input.value;
        this.page = 0;
        onChange(this);
      });
    }
    this.onChange = onChange;
  }

  setFilter(text, page) {
    this.filter = text || "";
    this.page = Math.max(0, Number(page || 0) | 0);
    for (const input of document.querySelectorAll(`input[data-filter="${this.name}"]`)) {
      if (input.value !== this.filter) input.value = this.filter;
    }
  }

  matches(items, text) {
    const words = this.filter.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) return items;
    return items.filter((it) => {
      const t = text(it).toLowerCase();
      return words.every((w) => t.includes(w));
    });
  }

  // render replaces the list's body (data-list="NAME") with the rows of
  // the current page of the matching items.
  render(items, text, row) {
    const shown = this.matches(items, text);
    this.shown = shown.length;
    const pages = Math.max(1, Math.ceil(shown.length / this.pageSize));
    if (this.page >= pages) this.page = pages - 1;
    const from = this.page * this.pageSize;
    const to = Math.min(shown.length, from + this.pageSize);
    const body = document.querySelector(`[data-list="${this.name}"]`);
    if (body) replaceIfChanged(body, shown.slice(from, to).map(row));
    const pager = document.querySelector(`[data-pager="${this.name}"]`);
    if (!pager) return;
    const of = this.filter.trim() ? " matching, of " + items.length : "";
    const words = shown.length ? (from + 1) + "–" + to + " of " + shown.length + of : (items.length ? "nothing matches the filter" : "none");
    const go = (page) => () => { this.page = page; if (this.onChange) this.onChange(this); };
    pager.replaceChildren(
      el("button", { "data-page": "prev", disabled: this.page === 0, onclick: go(this.page - 1) }, "‹ prev"), " ",
      el("span", { "data-shown": String(shown.length), "data-total": String(items.length) }, words), " ",
      el("button", { "data-page": "next", disabled: this.page >= pages - 1, onclick: go(this.page + 1) }, "next ›"));
    pager.hidden = items.length <= this.pageSize && !this.filter.trim();
  }
}
