// The lists of the Berth dashboard: services, tasks, nodes, triggers, scans
// and events, each with its filter box and pages, linking to the pages of
// services and nodes; and the rows and cells the pages share.
"use strict";

// lists are the filtered, paged lists, by name.
const lists = {
  services: new PagedList("services", 50),
  tasks: new PagedList("tasks", 50),
  nodes: new PagedList("nodes", 50),
  events: new PagedList("events", 50),
  "service-tasks": new PagedList("service-tasks", 50),
  "node-tasks": new PagedList("node-tasks", 50),
};

let renderQueued = false;
// lastRenderMs is how long the last render took, for the curious (and the
// browser test's figure).
let lastRenderMs = 0;

// render draws the page shown again, once per frame however many changes
// came.
function render() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const t0 = performance.now();
    const v = route.view;
    if (v === "overview" || v === "services") renderServices();
    if (v === "overview" || v === "tasks") renderTasks();
    if (v === "overview" || v === "nodes") renderNodes();
    if (v === "overview") { renderScans(); renderTriggers(); }
    if (v === "overview" || v === "events") renderEvents();
    if (v === "service") renderServicePage();
    if (v === "node") renderNodePage();
    if (v === "images") renderImagesPage();
    lastRenderMs = performance.now() - t0;
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

// serviceCounts counts, by service ID, the tasks meant to run, those
// running, and all of them.
function serviceCounts() {
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
  return { running, active, byService };
}

// desiredOf is how many tasks a service wants: its replicas, or for a
// global service the tasks meant to run.
function desiredOf(s, active) {
  const spec = s.spec || {};
  return spec.mode === "SERVICE_MODE_GLOBAL" ? (active.get(s.meta.id) || 0) : num(spec.replicas);
}

// serviceActions are a service's buttons: scale (not for global ones),
// restart and roll back.
function serviceActions(s) {
  const spec = s.spec || {};
  const key = s.app + "/" + s.name;
  const global = spec.mode === "SERVICE_MODE_GLOBAL";
  const scaleInput = el("input", { type: "number", min: "0", value: scaleDrafts.get(key) ?? String(num(spec.replicas)),
    "data-scale": key, "aria-label": "replicas of " + key, disabled: !can("ScaleService"), oninput: (ev) => scaleDrafts.set(key, ev.target.value) });
  return [
    global ? null : [scaleInput, " ", guarded("ScaleService", { "data-scale-button": key, onclick: () => scale(s, scaleInput.value) }, "scale"), " "],
    guarded("RestartService", { "data-restart": key, onclick: () => restart(s) }, "restart"), " ",
    guarded("RollbackService", { "data-rollback": key, onclick: () => rollback(s) }, "roll back")];
}

// keepFocus redraws with draw() and gives the focus back to the scale
// input that had it.
function keepFocus(draw) {
  const focused = document.activeElement && document.activeElement.getAttribute("data-scale");
  draw();
  if (focused) {
    const input = document.querySelector(`input[data-scale="${CSS.escape(focused)}"]`);
    if (input) input.focus();
  }
}

function sortedServices() {
  return [...state.services.values()].sort((a, b) =>
    (a.namespace + "/" + a.app + "/" + a.name).localeCompare(b.namespace + "/" + b.app + "/" + b.name));
}

function renderServices() {
  const { running, active, byService } = serviceCounts();
  let lastApp = null;
  const row = (s) => {
    const id = s.meta.id;
    const spec = s.spec || {};
    const key = s.app + "/" + s.name;
    const update = s.updateStatus && s.updateStatus.state ? enumName(s.updateStatus.state, "UPDATE_STATE_") : "";
    const appKey = s.namespace + "/" + s.app;
    const appCell = appKey === lastApp ? el("td") : el("td", {}, el("strong", {}, qualified(s.namespace, s.app)), " ",
      guarded("DeleteApp", { "data-delete-app": s.app, onclick: () => deleteApp(s.namespace, s.app) }, "delete app"));
    lastApp = appKey;
    return el("tr", { "data-service": key },
      appCell,
      el("td", {}, el("a", { href: serviceHref(s.namespace, s.app, s.name), "data-service-link": key }, s.name)),
      el("td", { class: "muted" }, spec.image || ""),
      el("td", { "data-running": String(running.get(id) || 0) }, (running.get(id) || 0) + " / " + desiredOf(s, active)),
      el("td", { "data-networks": key }, serviceNetworks(s, byService.get(id) || [])),
      el("td", {}, s.specVersion || ""),
      el("td", {}, update),
      el("td", {}, serviceActions(s)));
  };
  keepFocus(() => lists.services.render(sortedServices(),
    (s) => [s.namespace, s.app + "/" + s.name, s.spec && s.spec.image, "app=" + s.app, "service=" + s.name].join(" "), row));
}

function nodeName(id) {
  const n = state.nodes.get(id);
  return n ? n.name : (id || "").slice(0, 12);
}

// taskName is how a task is called on screen: APP/SERVICE.SLOT, or with
// the start of its ID for a global service's.
function taskName(t) {
  return qualified(t.namespace, t.app + "/" + t.service + "." + (num(t.slot) || t.meta.id.slice(0, 6)));
}

// startedAt is when a task last became running, from its history.
function startedAt(t) {
  const h = (t.history || []).filter((x) => x.state === "TASK_STATE_RUNNING");
  return h.length ? h[h.length - 1].at : (t.status && t.status.state === "TASK_STATE_RUNNING" ? t.status.timestamp : "");
}

// shownTasks are the tasks a list shows: those meant to run, and those
// that ended badly and were not replaced yet.
function shownTasks(filter) {
  return [...state.tasks.values()].filter((t) => (isActive(t) || (t.status && !["TASK_STATE_SHUTDOWN", "TASK_STATE_COMPLETE"].includes(t.status.state))) && (!filter || filter(t)))
    .sort(byTaskName);
}

// byTaskName orders tasks by app, service and slot. Plain comparisons:
// localeCompare costs too much over 10,000 tasks on every change.
function byTaskName(a, b) {
  const ka = a.app + "/" + a.service;
  const kb = b.app + "/" + b.service;
  if (ka !== kb) return ka < kb ? -1 : 1;
  return num(a.slot) - num(b.slot) || (a.meta.id < b.meta.id ? -1 : a.meta.id > b.meta.id ? 1 : 0);
}

// taskText is what a task's filter matches.
function taskText(t) {
  const st = enumName(t.status && t.status.state, "TASK_STATE_");
  const node = nodeName(t.nodeId);
  return [taskName(t), t.meta.id, "state=" + st, "node=" + node, "app=" + t.app, "service=" + t.service,
    "namespace=" + (t.namespace || "default"), t.status && (t.status.err || t.status.message)].join(" ");
}

// statsCells are a task's live CPU, memory and network use, from the last
// Top poll.
function statsCells(t) {
  const s = state.stats.get(t.meta.id);
  if (!s) return [el("td", { class: "muted num" }), el("td", { class: "muted num" }), el("td", { class: "muted num" })];
  const mem = bytes(s.memoryBytes) + (num(s.memoryLimitBytes) ? " / " + bytes(s.memoryLimitBytes) : "");
  const rx = Number(s.networkRxBytesPerSecond || 0);
  const tx = Number(s.networkTxBytesPerSecond || 0);
  const net = rx || tx ? "↓" + bytes(rx) + "/s ↑" + bytes(tx) + "/s" : "";
  return [
    el("td", { class: "num", "data-cpu": String(Number(s.cpuPercent || 0).toFixed(1)) }, Number(s.cpuPercent || 0).toFixed(1) + "%"),
    el("td", { class: "num", "data-memory": String(num(s.memoryBytes)) }, mem),
    el("td", { class: "num", title: "received " + bytes(s.networkRxBytes) + ", sent " + bytes(s.networkTxBytes) }, net)];
}

// taskRow is a task's row in every task list.
function taskRow(t) {
  const st = enumName(t.status && t.status.state, "TASK_STATE_");
  const name = taskName(t);
  const err = (t.status && (t.status.err || (st !== "running" ? t.status.message : ""))) || "";
  const health = t.status && t.status.health ? enumName(t.status.health, "HEALTH_") : "";
  const node = state.nodes.get(t.nodeId);
  return el("tr", { "data-task": t.meta.id, "data-task-service": t.app + "/" + t.service, "data-task-state": st },
    el("td", {}, el("a", { href: serviceHref(t.namespace, t.app, t.service) }, name)),
    el("td", { class: "state state-" + st }, st),
    el("td", { class: "muted" }, enumName(t.desiredState, "TASK_STATE_")),
    el("td", {}, node ? el("a", { href: nodeHref(node.name) }, node.name) : nodeName(t.nodeId)),
    el("td", { class: health === "unhealthy" ? "error" : "muted" }, health === "unspecified" ? "" : health),
    el("td", { class: "muted", title: startedAt(t) || "" }, ago(startedAt(t) || (t.status && t.status.timestamp))),
    ...statsCells(t),
    el("td", { class: "error" }, err),
    el("td", { class: "actions" }, el("button", { onclick: () => openLogs(t, name) }, "logs"),
      st === "running" ? [" ", el("a", { class: "button" + (can("Exec") ? "" : " disabled"), href: execHref(t.namespace, t.meta.id),
        "data-exec": t.meta.id, title: can("Exec") ? "a terminal in the task" : "needs the deployer role" }, "terminal")] : null));
}

function renderTasks() {
  lists.tasks.render(shownTasks(), taskText, taskRow);
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

// availabilityButtons are a node's drain/pause/activate actions.
function availabilityButtons(n) {
  const avail = enumName(n.availability, "NODE_AVAILABILITY_");
  const next = avail === "active" ? [["NODE_AVAILABILITY_DRAIN", "drain"], ["NODE_AVAILABILITY_PAUSE", "pause"]] : [["NODE_AVAILABILITY_ACTIVE", "activate"]];
  return next.map(([a, verb]) => [guarded("UpdateNode", { "data-node-action": verb, onclick: () => setAvailability(n, a, verb) }, verb), " "]);
}

function renderNodes() {
  const nodes = [...state.nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
  lists.nodes.render(nodes, (n) => [n.name, n.address, "status=" + enumName(n.status, "NODE_STATUS_"),
    "availability=" + enumName(n.availability, "NODE_AVAILABILITY_"), ...Object.entries(n.labels || {}).map(([k, v]) => k + "=" + v)].join(" "), (n) => {
    const status = enumName(n.status, "NODE_STATUS_");
    const words = nodeWords(n);
    const avail = enumName(n.availability, "NODE_AVAILABILITY_");
    const labels = Object.entries(n.labels || {}).sort().map(([k, v]) => el("span", { class: "label" }, k + "=" + v));
    return el("tr", { "data-node": n.name },
      el("td", {}, el("a", { href: nodeHref(n.name), "data-node-link": n.name }, n.name)),
      el("td", { class: "status-" + (words === status ? status : "not-ready"), title: n.statusMessage || "" }, words),
      el("td", { class: "avail-" + avail }, avail),
      el("td", { class: "muted" }, n.address || ""),
      el("td", {}, labels),
      el("td", {}, availabilityButtons(n).slice(0, 1)));
  });
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

// SEVERITIES are the finding counts the scans table shows, worst first.
const SEVERITIES = ["critical", "high", "medium", "low", "unknown"];

// findings sums a scan's counts: the total and the words for them.
function findings(r) {
  const counts = (r && r.counts) || {};
  const total = SEVERITIES.reduce((n, s) => n + Number(counts[s] || 0), 0);
  const words = SEVERITIES.filter((s) => Number(counts[s] || 0) > 0).map((s) => counts[s] + " " + s).join(", ");
  return { total, words };
}

function renderScans() {
  const scans = [...state.scans].sort((a, b) => (a.images || [""])[0].localeCompare((b.images || [""])[0]));
  $("#scans tbody").replaceChildren(...scans.map((r) => {
    const { total, words } = findings(r);
    return el("tr", { "data-digest": r.digest },
      el("td", {}, (r.images || []).join(", ")),
      el("td", { class: "muted", title: r.digest }, r.digest.slice(0, 19)),
      el("td", {}, String(r.packages || 0)),
      el("td", { class: total > 0 ? "findings" : "muted", "data-findings": String(total) }, total > 0 ? total + " (" + words + ")" : "none"),
      el("td", { class: "muted" }, String(r.dbGeneration || "-")));
  }));
}

// eventItem is one event as a list item.
function eventItem(e) {
  return el("li", { "data-event": e.kind + " " + e.action },
    el("time", { datetime: e.at, title: e.at }, new Date(e.at).toLocaleTimeString()),
    el("strong", {}, e.kind + " " + e.action), " ", e.message || "");
}

function renderEvents() {
  lists.events.render(state.events, (e) => [e.kind, e.action, e.message, ...Object.entries(e.attributes || {}).map(([k, v]) => k + "=" + v)].join(" "), eventItem);
}
