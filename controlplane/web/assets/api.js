// Helpers of the Berth dashboard that know nothing of its pages: building
// elements, calling the HTTP/JSON API (unary calls and NDJSON streams) with
// the API token kept in sessionStorage, and formatting numbers and times.
"use strict";

const API = "/berth.v1.ClusterService/";
const TOKEN_KEY = "berth-token";

const $ = (sel) => document.querySelector(sel);

// el builds an element: el("td", {class: "x"}, "text", child, ...).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// replaceIfChanged puts nodes in parent unless parent already shows the
// same markup: a redraw every few seconds (live use) must not swap the
// element under a click, nor lose hover and selection, when nothing on it
// changed.
function replaceIfChanged(parent, nodes) {
  const html = nodes.map((n) => (n instanceof Node ? (n.outerHTML ?? n.textContent) : String(n))).join("");
  if (parent.innerHTML !== html) parent.replaceChildren(...nodes);
}

class AuthError extends Error {}
// PermissionError is a call the caller's role or namespaces do not allow.
class PermissionError extends Error {}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function headers() {
  return { "Content-Type": "application/json", "Authorization": "Bearer " + token() };
}

async function failure(resp) {
  let msg = resp.status + " " + resp.statusText;
  try { msg = (await resp.json()).message || msg; } catch (e) { /* not JSON */ }
  if (resp.status === 401) return new AuthError(msg);
  if (resp.status === 403) return new PermissionError(msg);
  return new Error(msg);
}

// call invokes a unary method of the cluster API.
async function call(method, body, path) {
  const resp = await fetchRetrying(path || API + method, { method: "POST", headers: headers(), body: JSON.stringify(body || {}) });
  if (!resp.ok) throw await failure(resp);
  return resp.json();
}

// fetchRetrying is fetch that tries again, a few times, when the request
// failed on the way (the browser drops requests in flight when the
// machine's network changes, as it does each time a container starts on
// it). An answer from the server, even an error, is not retried.
// A request that gets no answer within CALL_TIMEOUT_MS is given up and
// tried again too: one lost that way can hang rather than fail. Each try
// waits twice as long as the one before, so a slow answer (the listing of
// a big cluster) still comes.
async function fetchRetrying(url, init) {
  for (let attempt = 1; ; attempt++) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), CALL_TIMEOUT_MS * 2 ** (attempt - 1));
    try {
      return await fetch(url, { ...init, signal: ctl.signal });
    } catch (e) {
      const lost = e instanceof TypeError || e.name === "AbortError";
      if (!lost || attempt >= 4) throw e;
      await new Promise((ok) => setTimeout(ok, 250 * attempt));
    } finally {
      clearTimeout(timer);
    }
  }
}

const CALL_TIMEOUT_MS = 10000;

// stream invokes a server-streaming method and hands each message to
// onMessage until the stream ends or signal aborts it.
async function stream(method, body, onMessage, signal, onOpen) {
  const resp = await fetch(API + method, { method: "POST", headers: headers(), body: JSON.stringify(body || {}), signal });
  if (!resp.ok) throw await failure(resp);
  if (onOpen) onOpen();
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line);
      if (msg.error) throw new Error(msg.error.message || JSON.stringify(msg.error));
      if (msg.result) onMessage(msg.result);
    }
  }
}

// enumName shortens "TASK_STATE_RUNNING" to "running".
function enumName(v, prefix) {
  return String(v || "").replace(prefix, "").toLowerCase() || "unknown";
}

function num(v) { return Number(v || 0); }

function ago(ts) {
  if (!ts) return "";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  if (s < 86400) return Math.floor(s / 3600) + "h ago";
  return Math.floor(s / 86400) + "d ago";
}


// bytes formats a byte count: "512 B", "1.5 KiB", "3.2 GiB".
function bytes(n) {
  n = Number(n || 0);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
}

// millicores formats CPU thousandths of a core: "250m", "1.5 cores".
function millicores(m) {
  m = Number(m || 0);
  return m < 1000 ? m + "m" : (m / 1000).toFixed(m % 1000 ? 1 : 0) + " cores";
}

function showMessage(text) { $("#message").textContent = text || ""; }
