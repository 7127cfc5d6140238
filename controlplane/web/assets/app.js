// The Berth dashboard: reads the cluster through the HTTP/JSON API with the
// API token kept in sessionStorage, keeps itself current with the Watch and
// WatchEvents streams, and acts through the same API.
"use strict";

const API = "/berth.v1.ClusterService/";
const TOKEN_KEY = "berth-token";
const NAMESPACE_KEY = "berth-namespace";
// ALL is the namespace picker's value for every namespace the caller may
// see.
const ALL = "*";
const POLL_MS = 3000;
const RETRY_MS = 5000;
const MAX_EVENTS = 100;

const state = { services: new Map(), tasks: new Map(), nodes: new Map(), events: [], triggers: [], scans: [] };
// TRIGGER_MS is how often build triggers and their runs are listed: no
// stream tells of runs.
const TRIGGER_MS = 5000;
// RUNS_SHOWN is how many runs of each trigger the table shows.
const RUNS_SHOWN = 10;
let triggerTimer = null;
let polling = null;
let streams = null;
let logs = null;
let preview = null;
// me is who the token belongs to (WhoAmI): principal, role, namespaces and
// the methods it may call.
let me = null;
// scaleDrafts keeps replica counts typed but not yet sent, by app/service,
// so that a re-render on a watch event does not wipe them.
const scaleDrafts = new Map();

const $ = (sel) => document.querySelector(sel);

// el builds an element: el("td", {class: "x"}, "text", child, ...).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
  }
  return e;
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
// tried again too: one lost that way can hang rather than fail.
async function fetchRetrying(url, init) {
  for (let attempt = 1; ; attempt++) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), CALL_TIMEOUT_MS);
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

function showMessage(text) { $("#message").textContent = text || ""; }

// act runs an action, reports its failure and signs out on a bad token.
async function act(fn) {
  showMessage("");
  try {
    await fn();
  } catch (e) {
    if (e instanceof AuthError) signOut(e.message);
    else if (e instanceof PermissionError) showMessage("Refused: " + e.message + ". " + roleHint());
    else showMessage(e.message);
  }
}

// --- who may do what ---------------------------------------------------------

// can reports whether the signed-in caller may call method; the server
// decides in the end, this only keeps the page from offering what it
// would refuse.
function can(method) { return !me || (me.methods || []).includes(method); }

// neededRole names the least role that may call method, for the hints
// next to what the page does not offer.
function neededRole(method) {
  return ["UpdateNode", "RemoveNode", "UpdateSettings", "JoinToken"].includes(method) ? "admin" : "deployer";
}

function roleHint() {
  if (!me) return "";
  const where = (me.namespaces || []).length ? " in " + me.namespaces.join(", ") : "";
  return "You are " + me.principal + ", a " + me.role + where + "; ask an admin for a token with more rights.";
}

// guarded is an action button that is disabled, with the reason as its
// tooltip, when the caller may not call method.
function guarded(method, attrs, label) {
  const allowed = can(method);
  return el("button", { ...attrs, disabled: !allowed,
    title: allowed ? attrs.title : "needs the " + neededRole(method) + " role; you are a " + (me ? me.role : "?") }, label);
}

function currentNamespace() { return sessionStorage.getItem(NAMESPACE_KEY) || defaultNamespace(); }

function defaultNamespace() {
  const own = (me && me.namespaces) || [];
  return own.length ? own[0] : "default";
}

// scope is what listing calls send: the picked namespace, or every one the
// caller may see.
function scope() {
  const ns = currentNamespace();
  return ns === ALL ? { allNamespaces: true } : { namespace: ns };
}

// qualified prefixes a name with its namespace when the page shows more
// than one.
function qualified(ns, name) { return currentNamespace() === ALL ? (ns || "default") + "/" + name : name; }

async function loadNamespaces() {
  let names = (me && me.namespaces) || [];
  if (!names.length) {
    try {
      names = ((await call("ListNamespaces")).namespaces || []).map((n) => n.namespace.name);
    } catch (e) {
      names = [];
    }
    if (!names.includes("default")) names.unshift("default");
  }
  const pick = $("#namespace");
  const options = names.map((n) => el("option", { value: n }, n));
  if (names.length > 1) options.push(el("option", { value: ALL }, "all namespaces"));
  pick.replaceChildren(...options);
  const cur = currentNamespace();
  pick.value = cur === ALL || names.includes(cur) ? cur : names[0];
  sessionStorage.setItem(NAMESPACE_KEY, pick.value);
  $("#namespace-picker").hidden = false;
}

function showIdentity() {
  const where = (me.namespaces || []).length ? " in " + me.namespaces.join(", ") : "";
  $("#whoami").textContent = me.principal + " (" + me.role + where + ")";
  const readOnly = !can("Apply");
  $("#apply-readonly").hidden = !readOnly;
  $("#apply-readonly").textContent = readOnly ? "Read-only: applying needs the deployer role; you are a " + me.role + "." : "";
  for (const id of ["#apply-app", "#apply-compose", "#apply-preview"]) $(id).disabled = readOnly;
}

// --- rendering -----------------------------------------------------------

let renderQueued = false;
function render() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderServices();
    renderTasks();
    renderNodes();
    renderScans();
    renderEvents();
    renderTriggers();
  });
}

function isActive(t) { return t.desiredState === "TASK_STATE_RUNNING"; }

// inService mirrors the control plane's rule (taskstate.InService): the
// task runs, is meant to, and passes its health check if it has one.
function inService(t) {
  const st = t.status || {};
  const h = st.health || "HEALTH_UNSPECIFIED";
  return st.state === "TASK_STATE_RUNNING" && t.desiredState === "TASK_STATE_RUNNING" &&
    (h === "HEALTH_UNSPECIFIED" || h === "HEALTH_HEALTHY");
}

const endedStates = new Set(["TASK_STATE_COMPLETE", "TASK_STATE_SHUTDOWN", "TASK_STATE_FAILED", "TASK_STATE_REJECTED", "TASK_STATE_ORPHANED"]);

// serviceNetworks is the Networks cell of a service: each network with
// the service's virtual IP, then its endpoints (the addresses of its tasks
// that have not ended), ready ones in green.
function serviceNetworks(s, tasks) {
  const spec = s.spec || {};
  const vips = (s.endpoint && s.endpoint.virtualIps) || [];
  const dnsrr = spec.endpointMode === "ENDPOINT_MODE_DNSRR";
  return (spec.networks || []).map((n) => {
    const vip = vips.find((v) => v.network === n.network);
    const eps = [];
    for (const t of tasks) {
      if (t.status && endedStates.has(t.status.state)) continue;
      for (const tn of t.networks || []) {
        if (tn.network !== n.network) continue;
        const ready = inService(t);
        eps.push(el("span", { class: "endpoint " + (ready ? "status-ready" : "warn"), "data-endpoint": tn.address.split("/")[0], "data-ready": String(ready),
          title: ready ? "takes traffic" : "not ready" }, tn.address.split("/")[0]));
      }
    }
    return el("div", { "data-network": n.network },
      el("span", { class: "label" }, n.network), " ",
      el("span", { "data-vip": vip ? vip.address : "" }, vip ? "VIP " + vip.address : (dnsrr ? "dnsrr" : "no VIP")),
      eps.length ? [" → ", ...eps.flatMap((e, i) => (i ? [", ", e] : [e]))] : el("span", { class: "muted" }, " no endpoints"));
  });
}

function renderServices() {
  const running = new Map();
  const active = new Map();
  const byService = new Map();
  for (const t of state.tasks.values()) {
    if (!byService.has(t.serviceId)) byService.set(t.serviceId, []);
    byService.get(t.serviceId).push(t);
    if (!isActive(t)) continue;
    active.set(t.serviceId, (active.get(t.serviceId) || 0) + 1);
    if (t.status && t.status.state === "TASK_STATE_RUNNING") running.set(t.serviceId, (running.get(t.serviceId) || 0) + 1);
  }
  const services = [...state.services.values()].sort((a, b) =>
    (a.namespace + "/" + a.app + "/" + a.name).localeCompare(b.namespace + "/" + b.app + "/" + b.name));
  const rows = [];
  let lastApp = null;
  for (const s of services) {
    const id = s.meta.id;
    const spec = s.spec || {};
    const global = spec.mode === "SERVICE_MODE_GLOBAL";
    const desired = global ? (active.get(id) || 0) : num(spec.replicas);
    const key = s.app + "/" + s.name;
    const update = s.updateStatus && s.updateStatus.state ? enumName(s.updateStatus.state, "UPDATE_STATE_") : "";
    const appKey = s.namespace + "/" + s.app;
    const appCell = appKey === lastApp ? el("td") : el("td", {}, el("strong", {}, qualified(s.namespace, s.app)), " ",
      guarded("DeleteApp", { "data-delete-app": s.app, onclick: () => deleteApp(s.namespace, s.app) }, "delete app"));
    lastApp = appKey;
    const scaleInput = el("input", { type: "number", min: "0", value: scaleDrafts.get(key) ?? String(num(spec.replicas)),
      "data-scale": key, "aria-label": "replicas of " + key, disabled: !can("ScaleService"), oninput: (ev) => scaleDrafts.set(key, ev.target.value) });
    rows.push(el("tr", { "data-service": key },
      appCell,
      el("td", {}, s.name),
      el("td", { class: "muted" }, spec.image || ""),
      el("td", { "data-running": String(running.get(id) || 0) }, (running.get(id) || 0) + " / " + desired),
      el("td", { "data-networks": key }, serviceNetworks(s, byService.get(id) || [])),
      el("td", {}, s.specVersion || ""),
      el("td", {}, update),
      el("td", {},
        global ? null : [scaleInput, " ", guarded("ScaleService", { "data-scale-button": key, onclick: () => scale(s, scaleInput.value) }, "scale"), " "],
        guarded("RestartService", { "data-restart": key, onclick: () => restart(s) }, "restart"), " ",
        guarded("RollbackService", { "data-rollback": key, onclick: () => rollback(s) }, "roll back"))));
  }
  const focused = document.activeElement && document.activeElement.getAttribute("data-scale");
  $("#services tbody").replaceChildren(...rows);
  if (focused) {
    const input = document.querySelector(`input[data-scale="${CSS.escape(focused)}"]`);
    if (input) input.focus();
  }
}

function nodeName(id) {
  const n = state.nodes.get(id);
  return n ? n.name : (id || "").slice(0, 12);
}

function renderTasks() {
  const tasks = [...state.tasks.values()].filter((t) => isActive(t) || (t.status && !["TASK_STATE_SHUTDOWN", "TASK_STATE_COMPLETE"].includes(t.status.state)))
    .sort((a, b) => (a.app + a.service).localeCompare(b.app + b.service) || num(a.slot) - num(b.slot));
  $("#tasks tbody").replaceChildren(...tasks.map((t) => {
    const st = enumName(t.status && t.status.state, "TASK_STATE_");
    const name = qualified(t.namespace, t.app + "/" + t.service + "." + (num(t.slot) || t.meta.id.slice(0, 6)));
    const err = (t.status && (t.status.err || (st !== "running" ? t.status.message : ""))) || "";
    return el("tr", { "data-task": t.meta.id, "data-task-service": t.app + "/" + t.service, "data-task-state": st },
      el("td", {}, name),
      el("td", { class: "state state-" + st }, st),
      el("td", { class: "muted" }, enumName(t.desiredState, "TASK_STATE_")),
      el("td", {}, nodeName(t.nodeId)),
      el("td", { class: "error" }, err),
      el("td", { class: "muted" }, ago(t.status && t.status.timestamp)),
      el("td", {}, el("button", { onclick: () => openLogs(t, name) }, "logs")));
  }));
}

// nodeWords is api/nodestate's Words: "ready", "not ready (TYPE: MESSAGE)"
// (connected, but its agent reports a failing condition), "unreachable"
// or "down".
function nodeWords(n) {
  const status = enumName(n.status, "NODE_STATUS_");
  const failing = status === "ready" && (n.conditions || []).find((c) => !c.ok);
  if (!failing) return status;
  return "not ready (" + failing.type + (failing.message ? ": " + failing.message : "") + ")";
}

function renderNodes() {
  const nodes = [...state.nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
  $("#nodes tbody").replaceChildren(...nodes.map((n) => {
    const status = enumName(n.status, "NODE_STATUS_");
    const words = nodeWords(n);
    const avail = enumName(n.availability, "NODE_AVAILABILITY_");
    const labels = Object.entries(n.labels || {}).sort().map(([k, v]) => el("span", { class: "label" }, k + "=" + v));
    const next = avail === "active" ? ["NODE_AVAILABILITY_DRAIN", "drain"] : ["NODE_AVAILABILITY_ACTIVE", "activate"];
    return el("tr", { "data-node": n.name },
      el("td", {}, n.name),
      el("td", { class: "status-" + (words === status ? status : "not-ready"), title: n.statusMessage || "" }, words),
      el("td", { class: "avail-" + avail }, avail),
      el("td", { class: "muted" }, n.address || ""),
      el("td", {}, labels),
      el("td", {}, guarded("UpdateNode", { "data-node-action": next[1], onclick: () => setAvailability(n, next[0], next[1]) }, next[1])));
  }));
}

// renderTriggers lists each trigger's newest runs with their state and a
// button that shows the run's log.
function renderTriggers() {
  const rows = [];
  for (const { trigger, runs } of state.triggers) {
    const name = qualified(trigger.namespace, trigger.name);
    if (!runs.length) {
      rows.push(el("tr", { "data-trigger": trigger.name }, el("td", {}, name), el("td", { class: "muted", colspan: "6" },
        "no run yet: pushes to " + trigger.branch + " post to " + (trigger.hookPath || "/hooks/" + trigger.name))));
    }
    for (const r of runs) {
      const st = enumName(r.state, "TRIGGER_RUN_STATE_").replace(/_/g, "-");
      const cls = st === "succeeded" ? "running" : st === "failed" ? "failed" : "pending";
      rows.push(el("tr", { "data-run": r.id },
        el("td", {}, name),
        el("td", {}, r.id),
        el("td", { class: "endpoint", title: r.commit }, (r.commit || "").slice(0, 12)),
        el("td", { class: "state state-" + cls }, st),
        el("td", {}, r.message || ""),
        el("td", { class: "muted" }, ago(r.createdAt)),
        el("td", {}, guarded("GetTriggerRunLog", { "data-run-log": r.id, onclick: () => openRunLog(r) }, "log"))));
    }
  }
  $("#trigger-runs tbody").replaceChildren(...rows);
}

// refreshTriggers lists the triggers of the namespace shown, with their
// newest runs.
async function refreshTriggers() {
  if (!can("ListTriggers")) { $("#triggers-section").hidden = true; return; }
  const list = (await call("ListTriggers", scope())).triggers || [];
  state.triggers = await Promise.all(list.map(async (t) => {
    const trigger = { ...t.trigger, hookPath: t.hookPath };
    const runs = ((await call("ListTriggerRuns", { namespace: trigger.namespace, name: trigger.name })).runs || []).slice(0, RUNS_SHOWN);
    return { trigger, runs };
  }));
  render();
}

function startTriggers() {
  stopTriggers();
  const tick = () => refreshTriggers().catch((e) => { if (e instanceof AuthError) signOut(e.message); });
  tick();
  triggerTimer = setInterval(tick, TRIGGER_MS);
}

function stopTriggers() {
  if (triggerTimer) clearInterval(triggerTimer);
  triggerTimer = null;
}

// openRunLog shows a run's log in the logs panel.
function openRunLog(r) {
  closeLogs();
  $("#logs-title").textContent = "run " + r.id + " of trigger " + r.trigger;
  $("#logs-panel").hidden = false;
  const out = $("#logs");
  out.replaceChildren();
  call("GetTriggerRunLog", { namespace: r.namespace, run: r.id }).then(
    (resp) => out.append(el("span", {}, (resp.log && resp.log.text) || "(empty log)\n")),
    (e) => out.append(el("span", { class: "stderr" }, "-- " + e.message + " --\n")));
}

// SEVERITIES are the finding counts the scans table shows, worst first.
const SEVERITIES = ["critical", "high", "medium", "low", "unknown"];

function renderScans() {
  const scans = [...state.scans].sort((a, b) => (a.images || [""])[0].localeCompare((b.images || [""])[0]));
  $("#scans tbody").replaceChildren(...scans.map((r) => {
    const counts = r.counts || {};
    const total = SEVERITIES.reduce((n, s) => n + Number(counts[s] || 0), 0);
    const words = SEVERITIES.filter((s) => Number(counts[s] || 0) > 0).map((s) => counts[s] + " " + s).join(", ");
    return el("tr", { "data-digest": r.digest },
      el("td", {}, (r.images || []).join(", ")),
      el("td", { class: "muted", title: r.digest }, r.digest.slice(0, 19)),
      el("td", {}, String(r.packages || 0)),
      el("td", { class: total > 0 ? "findings" : "muted", "data-findings": String(total) }, total > 0 ? total + " (" + words + ")" : "none"),
      el("td", { class: "muted" }, String(r.dbGeneration || "-")));
  }));
}

function renderEvents() {
  $("#events").replaceChildren(...state.events.map((e) => el("li", {},
    el("time", { datetime: e.at, title: e.at }, new Date(e.at).toLocaleTimeString()),
    el("strong", {}, e.kind + " " + e.action), " ", e.message || "")));
}

// --- state from the API ----------------------------------------------------

function put(map, obj) { map.set(obj.meta.id, obj); }

function applyWatch(ev) {
  const del = ev.action === "WATCH_ACTION_DELETE";
  for (const [kind, map] of [["node", state.nodes], ["service", state.services], ["task", state.tasks]]) {
    const obj = ev[kind];
    if (!obj) continue;
    if (del) map.delete(obj.meta.id); else put(map, obj);
  }
  render();
}

function addEvent(e) {
  state.events.unshift(e);
  if (state.events.length > MAX_EVENTS) state.events.length = MAX_EVENTS;
  render();
}

// refresh replaces everything with a fresh listing.
async function refresh(withEvents) {
  const [svcs, tasks, nodes, events] = await Promise.all([
    call("ListServices", scope()), call("ListTasks", scope()), call("ListNodes"),
    withEvents ? call("ListEvents", { limit: 50, ...scope() }) : null]);
  state.services = new Map(svcs.services.map((s) => [s.service.meta.id, s.service]));
  state.tasks = new Map(tasks.tasks.map((t) => [t.meta.id, t]));
  state.nodes = new Map(nodes.nodes.map((n) => [n.meta.id, n]));
  if (events) state.events = [...events.events].sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
  render();
  refreshScans();
}

// refreshScans reads the image scan summaries; a server or a role without
// them leaves the table empty.
async function refreshScans() {
  try {
    const resp = await call("ListScanResults");
    state.scans = resp.results || [];
  } catch (e) {
    state.scans = [];
  }
  render();
}

// connect follows the Watch and WatchEvents streams. When one fails the
// page polls instead and tries the streams again after a while.
function connect() {
  disconnect();
  const ctl = new AbortController();
  streams = ctl;
  let open = 0;
  const opened = () => {
    if (++open === 2) $("#live").textContent = "live";
  };
  const failed = (e) => {
    if (ctl.signal.aborted) return;
    if (e instanceof AuthError) { signOut(e.message); return; }
    if (e instanceof PermissionError) { ctl.abort(); showMessage("Refused: " + e.message + ". " + roleHint()); return; }
    ctl.abort();
    $("#live").textContent = "polling (" + (e.message || "stream ended") + ")";
    startPolling();
    setTimeout(() => { if (streams === ctl && token()) connect(); }, RETRY_MS);
  };
  // The listing is read at once, and again once Watch is open, so no
  // change falls between.
  refresh(false).catch(failed);
  stream("Watch", scope(), applyWatch, ctl.signal, () => { opened(); refresh(false).catch(failed); })
    .then(() => failed(new Error("watch ended")), failed);
  state.events = [];
  stream("WatchEvents", { limit: 50, ...scope() }, addEvent, ctl.signal, opened)
    .then(() => failed(new Error("event stream ended")), failed);
  startTriggers();
}

function disconnect() {
  if (streams) streams.abort();
  streams = null;
  stopPolling();
  stopTriggers();
}

function startPolling() {
  if (polling) return;
  const tick = () => refresh(true).catch((e) => { if (e instanceof AuthError) signOut(e.message); });
  tick();
  polling = setInterval(tick, POLL_MS);
}

function stopPolling() {
  if (polling) clearInterval(polling);
  polling = null;
}

// --- actions -------------------------------------------------------------

function scale(s, value) {
  const replicas = Number(value);
  if (!Number.isInteger(replicas) || replicas < 0) { showMessage("replicas must be a whole number, 0 or more"); return; }
  scaleDrafts.delete(s.app + "/" + s.name);
  act(() => call("ScaleService", { namespace: s.namespace, app: s.app, service: s.name, replicas: String(replicas) }));
}

function restart(s) {
  if (!confirm("Replace every task of " + s.app + "/" + s.name + " with a fresh one, by its update_config?")) return;
  act(() => call("RestartService", { namespace: s.namespace, app: s.app, service: s.name }));
}

function rollback(s) {
  if (!confirm("Roll " + s.app + "/" + s.name + " back to its previous spec?")) return;
  act(() => call("RollbackService", { namespace: s.namespace, app: s.app, service: s.name }));
}

function deleteApp(namespace, app) {
  if (!confirm("Delete app " + app + " and all its services?")) return;
  act(() => call("DeleteApp", { namespace, app }));
}

function setAvailability(n, availability, verb) {
  if (verb === "drain" && !confirm("Drain node " + n.name + "? Its tasks move to other nodes.")) return;
  act(async () => applyWatch({ node: await call("UpdateNode", { node: n.name, availability }) }));
}

function openLogs(t, name) {
  closeLogs();
  const ctl = new AbortController();
  logs = ctl;
  const out = $("#logs");
  out.replaceChildren();
  $("#logs-title").textContent = name;
  $("#logs-panel").hidden = false;
  const decoder = new TextDecoder();
  const onLine = (entry) => {
    const bytes = Uint8Array.from(atob(entry.line || ""), (c) => c.charCodeAt(0));
    let text = decoder.decode(bytes);
    if (!text.endsWith("\n")) text += "\n";
    const atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    out.append(el("span", { class: entry.stream === "LOG_STREAM_STDERR" ? "stderr" : null }, text));
    if (atBottom) out.scrollTop = out.scrollHeight;
  };
  stream("Logs", { namespace: t.namespace, app: t.app, service: t.service, taskId: t.meta.id, follow: true, tail: "200" }, onLine, ctl.signal)
    .then(() => out.append(el("span", { class: "muted" }, "-- end of logs --\n")),
      (e) => { if (!ctl.signal.aborted) out.append(el("span", { class: "stderr" }, "-- " + e.message + " --\n")); });
}

function closeLogs() {
  if (logs) logs.abort();
  logs = null;
  $("#logs-panel").hidden = true;
}

function renderChanges(resp, warnings, applied) {
  const changes = (resp.changes || []).map((c) => {
    const action = enumName(c.action, "CHANGE_ACTION_");
    const fields = (c.fields || []).length ? " (" + c.fields.join(", ") + ")" : "";
    return el("li", { class: "change-" + action }, action + " " + c.service + fields);
  });
  $("#apply-result").replaceChildren(
    el("p", {}, applied ? "Applied:" : "Preview, nothing changed yet:"),
    el("ul", { id: "apply-changes" }, changes),
    (warnings || []).map((w) => el("p", { class: "warn" }, w)));
}

async function previewApply() {
  preview = null;
  $("#apply-run").disabled = true;
  $("#apply-result").replaceChildren();
  await act(async () => {
    const project = await call(null, { app: $("#apply-app").value.trim(), compose: $("#apply-compose").value }, "compose");
    const ns = currentNamespace();
    if (ns === ALL) throw new Error("pick the namespace to apply to first (the picker at the top)");
    const req = {
      namespace: ns, app: project.app, services: project.services, networks: project.networks,
      volumes: project.volumes, secrets: project.secrets, configs: project.configs,
    };
    const resp = await call("Apply", { ...req, dryRun: true });
    renderChanges(resp, project.warnings, false);
    preview = req;
    $("#apply-run").disabled = false;
  });
}

async function runApply() {
  if (!preview) return;
  const req = preview;
  $("#apply-run").disabled = true;
  await act(async () => renderChanges(await call("Apply", req), [], true));
  preview = null;
}

// --- sign-in -----------------------------------------------------------------

async function signIn(tok) {
  sessionStorage.setItem(TOKEN_KEY, tok);
  try {
    me = await call("WhoAmI");
  } catch (e) {
    signOut(e.message);
    return;
  }
  await loadNamespaces();
  showIdentity();
  $("#login").hidden = true;
  $("#dashboard").hidden = false;
  $("#logout").hidden = false;
  connect();
}

// switchNamespace shows another namespace: everything is listed and
// watched again.
function switchNamespace(ns) {
  sessionStorage.setItem(NAMESPACE_KEY, ns);
  state.services = new Map();
  state.tasks = new Map();
  state.events = [];
  state.triggers = [];
  scaleDrafts.clear();
  closeLogs();
  render();
  connect();
}

function signOut(why) {
  disconnect();
  closeLogs();
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(NAMESPACE_KEY);
  me = null;
  $("#whoami").textContent = "";
  $("#namespace-picker").hidden = true;
  $("#dashboard").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = why || "";
  $("#live").textContent = "not connected";
  $("#token").focus();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const tok = $("#token").value.trim();
    if (!tok) return;
    $("#token").value = "";
    signIn(tok);
  });
  $("#login-button").disabled = false;
  $("#logout").addEventListener("click", () => signOut(""));
  $("#namespace").addEventListener("change", (ev) => switchNamespace(ev.target.value));
  $("#logs-close").addEventListener("click", closeLogs);
  $("#apply-preview").addEventListener("click", previewApply);
  $("#apply-run").addEventListener("click", runApply);
  $("#apply-compose").addEventListener("input", () => { preview = null; $("#apply-run").disabled = true; });
  if (token()) signIn(token()); else signOut("");
});
