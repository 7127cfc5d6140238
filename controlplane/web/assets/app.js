// The Berth dashboard: reads the cluster through the HTTP/JSON API with the
// API token kept in sessionStorage, keeps itself current with the Watch and
// WatchEvents streams, and acts through the same API.
"use strict";

const NAMESPACE_KEY = "berth-namespace";
// ALL is the namespace picker's value for every namespace the caller may
// see.
const ALL = "*";
const MAX_EVENTS = 100;

// state is what the page knows of the cluster: stats are the last Top
// answer, by task ID.
const state = { services: new Map(), tasks: new Map(), nodes: new Map(), events: [], triggers: [], scans: [], stats: new Map() };
// TRIGGER_MS is how often build triggers and their runs are listed: no
// stream tells of runs.
const TRIGGER_MS = 5000;
// RUNS_SHOWN is how many runs of each trigger the table shows.
const RUNS_SHOWN = 10;
let triggerTimer = null;
let streams = null;
let logs = null;
let preview = null;
// me is who the token belongs to (WhoAmI): principal, role, namespaces and
// the methods it may call.
let me = null;
// scaleDrafts keeps replica counts typed but not yet sent, by app/service,
// so that a re-render on a watch event does not wipe them.
const scaleDrafts = new Map();

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

// --- build triggers --------------------------------------------------------

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
  serviceEventArrived();
  render();
}

// refresh replaces everything with a fresh listing.
async function refresh() {
  const [svcs, tasks, nodes] = await Promise.all([call("ListServices", scope()), call("ListTasks", scope()), call("ListNodes")]);
  state.services = new Map(svcs.services.map((s) => [s.service.meta.id, s.service]));
  state.tasks = new Map(tasks.tasks.map((t) => [t.meta.id, t]));
  state.nodes = new Map(nodes.nodes.map((n) => [n.meta.id, n]));
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

// The connection: the header says what it is, always from what the page
// last saw of its streams. "connected" once both Watch and WatchEvents are
// open (their headers came), "reconnecting…" with the reason and the
// time to the next try after either failed or ended (the tries back off
// from RETRY_MIN_MS to RETRY_MAX_MS), "not signed in" without a token.
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30000;
let retryMs = RETRY_MIN_MS;
let retryTimer = null;
let countdown = null;

const LIVE_WORDS = { "not-signed-in": "not signed in", connecting: "connecting…", connected: "connected", reconnecting: "reconnecting…", refused: "not connected" };

function setLive(st, detail) {
  const live = $("#live");
  live.setAttribute("data-state", st);
  live.className = "live live-" + st;
  live.textContent = LIVE_WORDS[st] + (detail ? " (" + detail + ")" : "");
}

// connect lists everything and follows the Watch and WatchEvents streams.
// When one fails, both are dropped and tried again after a while; the
// listing is read again with them.
function connect(again) {
  disconnect();
  const ctl = new AbortController();
  streams = ctl;
  setLive(again ? "reconnecting" : "connecting", again ? "trying now" : "");
  let open = 0;
  const opened = () => {
    if (++open === 2 && streams === ctl) {
      retryMs = RETRY_MIN_MS;
      setLive("connected");
    }
  };
  const failed = (e) => {
    if (ctl.signal.aborted) return;
    if (e instanceof AuthError) { signOut(e.message); return; }
    ctl.abort();
    if (e instanceof PermissionError) {
      setLive("refused", "the role may not watch");
      showMessage("Refused: " + e.message + ". " + roleHint());
      refresh().catch(() => {});
      return;
    }
    scheduleReconnect(e.message || "stream ended");
  };
  // The listing is read once Watch is open (its headers come as soon as
  // the server has subscribed), so no change falls between.
  stream("Watch", scope(), applyWatch, ctl.signal, () => { opened(); refresh().catch(failed); })
    .then(() => failed(new Error("the watch ended")), failed);
  state.events = [];
  stream("WatchEvents", { limit: 50, ...scope() }, addEvent, ctl.signal, opened)
    .then(() => failed(new Error("the event stream ended")), failed);
  startTriggers();
  startStats();
}

// scheduleReconnect shows why the page lost the cluster and counts down
// to the next try.
function scheduleReconnect(why) {
  stopTriggers();
  stopStats();
  const wait = retryMs;
  retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  const until = Date.now() + wait;
  const tick = () => setLive("reconnecting", why + "; retry in " + Math.max(0, Math.ceil((until - Date.now()) / 1000)) + "s");
  tick();
  countdown = setInterval(tick, 1000);
  retryTimer = setTimeout(() => { if (token()) connect(true); }, wait);
}

function disconnect() {
  if (streams) streams.abort();
  streams = null;
  clearTimeout(retryTimer);
  clearInterval(countdown);
  retryTimer = countdown = null;
  stopTriggers();
  stopStats();
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

// --- routes ------------------------------------------------------------------

// LIST_PAGE and OVERVIEW_PAGE are how many rows a list shows at once, on
// its own page and on the overview.
const LIST_PAGE = 50;
const OVERVIEW_PAGE = 15;

// route is the page the URL's hash names (routes.js).
let route = parseRoute(location.hash);

// listHash is the URL of a list's route with its filter and page.
function listHash(list) {
  const p = new URLSearchParams();
  if (list.filter.trim()) p.set("q", list.filter);
  if (list.page > 0) p.set("page", String(list.page + 1));
  const q = p.toString();
  return "#/" + list.name + (q ? "?" + q : "");
}

// routeNamespace is the namespace the route's page belongs to, when the
// page shown is of another one and the caller may see it; else null.
function routeNamespace() {
  if (!route.ns || !me) return null;
  const cur = currentNamespace();
  if (cur === ALL || cur === route.ns) return null;
  const options = [...$("#namespace").options].map((o) => o.value);
  return options.includes(route.ns) ? route.ns : null;
}

// showRoute shows the page the URL names: the sections of its view, its
// list's filter and page, and the page's own data.
function showRoute() {
  const prev = route;
  route = parseRoute(location.hash);
  if (prev.view === "exec" && (route.view !== "exec" || prev.task !== route.task)) closeTerminal();
  for (const s of document.querySelectorAll("[data-views]")) {
    const views = s.getAttribute("data-views").split(" ");
    s.hidden = !views.includes(route.view);
  }
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("current", a.getAttribute("data-nav") === route.view || a.getAttribute("data-nav") + "s" === route.view);
  }
  $("#route-error").textContent = route.unknown ? "There is no page " + route.unknown + "; here is the overview." : "";
  if (LISTED_VIEWS.has(route.view)) lists[route.view].setFilter(route.params.get("q"), Number(route.params.get("page") || 1) - 1);
  // The overview shows shorter pages of each list, so all fit above the
  // fold; a list's own page shows more.
  for (const name of LISTED_VIEWS) lists[name].pageSize = route.view === "overview" ? OVERVIEW_PAGE : LIST_PAGE;
  if (prev.view !== route.view) window.scrollTo(0, 0);
  if (!me) return;
  const ns = routeNamespace();
  if (ns) {
    $("#namespace").value = ns;
    switchNamespace(ns);
  }
  enterPage();
  startStats();
  render();
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
  const ns = routeNamespace();
  if (ns) {
    sessionStorage.setItem(NAMESPACE_KEY, ns);
    $("#namespace").value = ns;
  }
  showIdentity();
  $("#login").hidden = true;
  $("#dashboard").hidden = false;
  $("#logout").hidden = false;
  $("#nav").hidden = false;
  connect();
  enterPage();
}

// switchNamespace shows another namespace: everything is listed and
// watched again.
function switchNamespace(ns) {
  sessionStorage.setItem(NAMESPACE_KEY, ns);
  state.services = new Map();
  state.tasks = new Map();
  state.events = [];
  state.triggers = [];
  state.stats = new Map();
  scaleDrafts.clear();
  closeLogs();
  render();
  connect();
}

function signOut(why) {
  disconnect();
  closeLogs();
  closeTerminal();
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(NAMESPACE_KEY);
  me = null;
  $("#whoami").textContent = "";
  $("#namespace-picker").hidden = true;
  $("#dashboard").hidden = true;
  $("#logout").hidden = true;
  $("#nav").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = why || "";
  setLive("not-signed-in");
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
  $("#images-refresh").addEventListener("click", loadImages);
  $("#apply-preview").addEventListener("click", previewApply);
  $("#apply-run").addEventListener("click", runApply);
  $("#apply-compose").addEventListener("input", () => { preview = null; $("#apply-run").disabled = true; });
  for (const list of Object.values(lists)) {
    list.bind(() => {
      if (route.view === list.name) history.replaceState(null, "", listHash(list));
      render();
    });
  }
  window.addEventListener("hashchange", showRoute);
  // Back online: try at once rather than wait for the next retry.
  window.addEventListener("online", () => { if (token() && retryTimer) connect(true); });
  document.addEventListener("visibilitychange", () => { if (document.hidden) stopStats(); else if (streams) startStats(); });
  showRoute();
  if (token()) signIn(token()); else signOut("");
});
