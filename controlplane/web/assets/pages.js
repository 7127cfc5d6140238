// The pages of one thing in the Berth dashboard: a service (spec, tasks,
// networks, rollout history with revert, events), a node (capacity against
// what its tasks reserve and use, conditions, labels, tasks) and the
// cluster's images and registries; and the live CPU, memory and network
// use of the tasks on screen, polled from Top while the tab is visible.
"use strict";

// STATS_MS is how often Top is asked while a page shows tasks.
const STATS_MS = 2000;
// STATS_MAX_TASKS: a list of more tasks than this, across services, is
// not polled (Top asks every node); a page of one service or node is.
const STATS_MAX_TASKS = 1000;
let statsTimer = null;

// --- live use ------------------------------------------------------------------

// statsRequest is the Top request for the tasks the page shows, or null.
function statsRequest() {
  switch (route.view) {
    case "service":
      return { namespace: route.ns, app: route.app, service: route.service };
    case "node": {
      const n = nodeByName(route.node);
      return n ? { ...scope(), nodeId: n.meta.id } : null;
    }
    case "overview": case "tasks": {
      // The narrowest request that covers the rows on screen.
      const shown = [...document.querySelectorAll('[data-list="tasks"] tr[data-task]')]
        .map((r) => state.tasks.get(r.getAttribute("data-task"))).filter(Boolean);
      if (!shown.length) return null;
      const one = (f) => shown.every((t) => f(t) === f(shown[0]));
      if (one((t) => t.namespace + "/" + t.app + "/" + t.service)) return { namespace: shown[0].namespace, app: shown[0].app, service: shown[0].service };
      if (one((t) => t.namespace + "/" + t.app)) return { namespace: shown[0].namespace, app: shown[0].app };
      return state.tasks.size <= STATS_MAX_TASKS ? scope() : null;
    }
  }
  return null;
}

async function pollStats() {
  if (document.hidden || !can("Top") || !streams) return;
  const req = statsRequest();
  if (!req) return;
  try {
    const resp = await call("Top", req);
    state.stats = new Map((resp.tasks || []).map((s) => [s.taskId, s]));
    render();
  } catch (e) {
    if (e instanceof AuthError) signOut(e.message);
  }
}

// startStats polls Top while the page shows tasks and the tab is seen.
function startStats() {
  stopStats();
  if (document.hidden || !["service", "node", "overview", "tasks"].includes(route.view)) return;
  statsTimer = setInterval(pollStats, STATS_MS);
  // The first answer once the rows are drawn.
  setTimeout(pollStats, 100);
}

function stopStats() {
  if (statsTimer) clearInterval(statsTimer);
  statsTimer = null;
}

// enterPage loads what a page shows that the streams do not bring.
function enterPage() {
  if (!me) return;
  if (route.view === "service") loadServiceEvents();
  if (route.view === "images") loadImages();
  if (route.view === "exec") openTerminal(route.ns, route.task, route.params.get("cmd") || "sh");
}

// dl is a definition list of the pairs whose value is not empty.
function dl(id, pairs) {
  const items = [];
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === "" || (Array.isArray(v) && !v.length)) continue;
    items.push(el("dt", {}, k), el("dd", { "data-field": k.toLowerCase() }, v));
  }
  $(id).replaceChildren(...items);
}

// --- a service -------------------------------------------------------------------

function findService(ns, app, name) {
  for (const s of state.services.values()) {
    if ((s.namespace || "default") === ns && s.app === app && s.name === name) return s;
  }
  return null;
}

// serviceEvents are the events of the service shown, newest first.
let serviceEvents = { key: "", events: [] };
let serviceEventsTimer = null;

async function loadServiceEvents() {
  const key = route.ns + "/" + route.app + "/" + route.service;
  try {
    const resp = await call("ListEvents", { namespace: route.ns, app: route.app, service: route.service, limit: 50 });
    serviceEvents = { key, events: [...(resp.events || [])].sort((a, b) => Date.parse(b.at) - Date.parse(a.at)) };
  } catch (e) {
    serviceEvents = { key, events: [], error: e.message };
  }
  render();
}

// serviceEventArrived reads the service's events again, once a second at
// most, when events come while its page is shown.
function serviceEventArrived() {
  if (route.view !== "service" || serviceEventsTimer) return;
  serviceEventsTimer = setTimeout(() => { serviceEventsTimer = null; loadServiceEvents(); }, 1000);
}

// yamlScalar writes a value as YAML would, quoting strings that need it.
function yamlScalar(v) {
  // 64-bit numbers come as strings in JSON: they read as numbers.
  if (typeof v !== "string" || /^-?\d+$/.test(v)) return String(v);
  return v === "" || /^[\s-?:,[\]{}#&*!|>'"%@`]|[:#]\s|\s$|^(true|false|null|~|[-+.\d][\d._eE+-]*)$/i.test(v) ? JSON.stringify(v) : v;
}

// yamlLines writes an object as YAML lines, for reading.
function yamlLines(v, indent, out) {
  for (const [k, x] of Object.entries(v)) {
    if (x === null || typeof x !== "object") { out.push(indent + k + ": " + yamlScalar(x)); continue; }
    const empty = Array.isArray(x) ? !x.length : !Object.keys(x).length;
    if (empty) { out.push(indent + k + ": " + (Array.isArray(x) ? "[]" : "{}")); continue; }
    out.push(indent + k + ":");
    if (!Array.isArray(x)) { yamlLines(x, indent + "  ", out); continue; }
    for (const item of x) {
      if (item === null || typeof item !== "object") { out.push(indent + "- " + yamlScalar(item)); continue; }
      const sub = [];
      yamlLines(item, indent + "  ", sub);
      if (!sub.length) { out.push(indent + "- {}"); continue; }
      sub[0] = indent + "- " + sub[0].slice(indent.length + 2);
      out.push(...sub);
    }
  }
  return out;
}

// pruned is v without what the API sends for fields left unset (null,
// "", false, [], {}, *_UNSPECIFIED), so a spec reads as it was written.
function pruned(v) {
  if (Array.isArray(v)) return v.map(pruned);
  if (v === null || typeof v !== "object") return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    const p = pruned(x);
    if (p === null || p === "" || p === false || (typeof p === "string" && p.endsWith("_UNSPECIFIED"))) continue;
    if (typeof p === "object" && (Array.isArray(p) ? !p.length : !Object.keys(p).length)) continue;
    out[k] = p;
  }
  return out;
}

function yaml(v) { return yamlLines(pruned(v || {}), "", []).join("\n"); }

// flatten maps each leaf of v to its path ("ports[0].published").
function flatten(v, path, out) {
  if (v !== null && typeof v === "object") {
    const arr = Array.isArray(v);
    const entries = arr ? v.map((x, i) => [i, x]) : Object.entries(v);
    if (!entries.length && path) out.set(path, arr ? "[]" : "{}");
    for (const [k, x] of entries) flatten(x, arr ? path + "[" + k + "]" : (path ? path + "." : "") + k, out);
  } else {
    out.set(path, typeof v === "string" ? v : JSON.stringify(v));
  }
  return out;
}

// specDiff is what changed from spec a to spec b, by path: added, removed
// and changed leaves.
function specDiff(a, b) {
  const from = flatten(pruned(a || {}), "", new Map());
  const to = flatten(pruned(b || {}), "", new Map());
  const paths = [...new Set([...from.keys(), ...to.keys()])].sort();
  const out = [];
  for (const p of paths) {
    if (!from.has(p)) out.push({ op: "+", text: p + ": " + to.get(p) });
    else if (!to.has(p)) out.push({ op: "-", text: p + ": " + from.get(p) });
    else if (from.get(p) !== to.get(p)) out.push({ op: "~", text: p + ": " + from.get(p) + " → " + to.get(p) });
  }
  return out;
}

// versions are a service's kept specs and its current one, newest first.
function versions(s) {
  const all = [...(s.revisions || []).map((r) => ({ ...r, current: false })),
    { specVersion: s.specVersion, spec: s.spec, createdAt: s.specUpdatedAt, changeCause: s.changeCause, current: true }];
  all.sort((a, b) => num(a.specVersion) - num(b.specVersion));
  return all.map((v, i) => ({ ...v, diff: i ? specDiff(all[i - 1].spec, v.spec) : null })).reverse();
}

function historyRow(s, v) {
  const changes = v.diff === null ? el("span", { class: "muted" }, "the oldest version kept")
    : v.diff.length ? el("ul", { class: "diff" }, v.diff.map((d) => el("li", { class: "diff-" + { "+": "add", "-": "remove", "~": "change" }[d.op] }, d.op + " " + d.text)))
      : el("span", { class: "muted" }, "the same spec");
  return el("tr", { "data-version": String(num(v.specVersion)) },
    el("td", {}, String(num(v.specVersion))),
    el("td", { class: "muted", title: v.createdAt || "" }, ago(v.createdAt)),
    el("td", {}, v.changeCause || ""),
    el("td", {}, changes),
    el("td", {}, v.current ? el("span", { class: "label" }, "current")
      : guarded("RollbackService", { "data-revert": String(num(v.specVersion)), onclick: () => revert(s, num(v.specVersion)) }, "revert to this")));
}

function revert(s, version) {
  if (!confirm("Roll " + s.app + "/" + s.name + " back to its spec version " + version + "? Its tasks are replaced by its rollback_config.")) return;
  act(() => call("RollbackService", { namespace: s.namespace, app: s.app, service: s.name, toVersion: String(version) }));
}

function renderServicePage() {
  const s = findService(route.ns, route.app, route.service);
  $("#svc-title").textContent = route.app + "/" + route.service + (route.ns !== "default" ? " in " + route.ns : "");
  $("#svc-missing").hidden = !!s;
  $("#svc-body").hidden = !s;
  if (!s) {
    $("#svc-missing").textContent = streams ? "There is no service " + route.app + "/" + route.service + " in namespace " + route.ns + "." : "Loading…";
    return;
  }
  const spec = s.spec || {};
  const { running, active } = serviceCounts();
  const tasks = shownTasks((t) => t.serviceId === s.meta.id);
  const us = s.updateStatus || {};
  const rollout = us.state ? enumName(us.state, "UPDATE_STATE_").replace(/_/g, "-") + (us.message ? ": " + us.message : "") : "";
  dl("#svc-summary", [
    ["Image", spec.image],
    ["Mode", spec.mode === "SERVICE_MODE_GLOBAL" ? "global" : "replicated, " + num(spec.replicas) + " wanted"],
    ["Running", (running.get(s.meta.id) || 0) + " of " + desiredOf(s, active)],
    ["Version", num(s.specVersion) + (s.changeCause ? ", " + s.changeCause : "") + (s.specUpdatedAt ? ", " + ago(s.specUpdatedAt) : "")],
    ["Rollout", rollout],
    ["Networks", (spec.networks || []).length ? serviceNetworks(s, [...state.tasks.values()].filter((t) => t.serviceId === s.meta.id)) : ""],
  ]);
  const first = tasks.find((t) => t.status && t.status.state === "TASK_STATE_RUNNING");
  keepFocus(() => replaceIfChanged($("#svc-actions"), [el("span", {}, serviceActions(s), " ",
    first && can("Exec") ? el("a", { class: "button", href: execHref(s.namespace, first.meta.id), "data-exec": first.meta.id }, "terminal") : null)]));
  lists["service-tasks"].render(tasks, taskText, taskRow);
  replaceIfChanged($("#svc-history tbody"), versions(s).map((v) => historyRow(s, v)));
  $("#svc-spec").textContent = yaml(spec);
  const key = route.ns + "/" + route.app + "/" + route.service;
  const evs = serviceEvents.key === key ? serviceEvents.events : [];
  $("#svc-events").replaceChildren(...(evs.length ? evs.map(eventItem) : [el("li", { class: "muted" }, serviceEvents.error || "no events")]));
}

// --- a node ----------------------------------------------------------------------

function nodeByName(name) {
  for (const n of state.nodes.values()) if (n.name === name || n.meta.id === name) return n;
  return null;
}

// holdsRoom are the states in which a task holds its reservation on its
// node (scheduler.Holds).
const holdsRoom = new Set(["TASK_STATE_ASSIGNED", "TASK_STATE_ACCEPTED", "TASK_STATE_PREPARING", "TASK_STATE_STARTING", "TASK_STATE_RUNNING"]);

// nodeUse sums what the node's tasks (those the caller sees) reserve and,
// from the last Top answer, use.
function nodeUse(n) {
  const u = { cpu: 0, memory: 0, usedCpu: 0, usedMemory: 0, tasks: 0 };
  for (const t of state.tasks.values()) {
    if (t.nodeId !== n.meta.id || !holdsRoom.has(t.status && t.status.state)) continue;
    const r = (t.spec && t.spec.reservations) || {};
    u.cpu += num(r.milliCpus);
    u.memory += num(r.memoryBytes);
    u.tasks++;
    const s = state.stats.get(t.meta.id);
    if (s) {
      u.usedCpu += Number(s.cpuPercent || 0) * 10;
      u.usedMemory += num(s.memoryBytes);
    }
  }
  return u;
}

// capacityBar shows what is allocated (reserved) and in use of a node's
// capacity.
function capacityBar(what, allocated, used, capacity, fmt) {
  const pct = (v) => (capacity > 0 ? Math.min(100, (v * 100) / capacity) : 0);
  const alloc = el("div", { class: "fill alloc" });
  alloc.style.width = pct(allocated) + "%";
  const inUse = el("div", { class: "fill used" });
  inUse.style.width = pct(used) + "%";
  return el("div", { class: "capacity", "data-capacity": what, "data-allocated": String(allocated), "data-total": String(capacity) },
    el("div", {}, el("strong", {}, what), " ", fmt(allocated) + " reserved" + (capacity ? " (" + Math.round(pct(allocated)) + "%)" : "") +
      ", " + fmt(Math.round(used)) + " in use, of " + (capacity ? fmt(capacity) : "an unknown capacity")),
    el("div", { class: "bar", title: "dark: reserved by tasks; light: in use now" }, alloc, inUse));
}

function renderNodePage() {
  const n = nodeByName(route.node);
  $("#node-title").textContent = route.node;
  $("#node-missing").hidden = !!n;
  $("#node-body").hidden = !n;
  if (!n) {
    $("#node-missing").textContent = streams ? "There is no node " + route.node + "." : "Loading…";
    return;
  }
  const words = nodeWords(n);
  const status = enumName(n.status, "NODE_STATUS_");
  const avail = enumName(n.availability, "NODE_AVAILABILITY_");
  const platform = n.platform ? [n.platform.os, n.platform.architecture].filter(Boolean).join("/") : "";
  dl("#node-summary", [
    ["Status", el("span", { class: "status-" + (words === status ? status : "not-ready"), title: n.statusMessage || "" }, words + (n.statusSince ? ", " + ago(n.statusSince) : ""))],
    ["Availability", el("span", { class: "avail-" + avail }, avail)],
    ["Role", n.role],
    ["Address", n.address],
    ["Hostname", n.hostname],
    ["Agent version", n.agentVersion],
    ["Platform", platform],
    ["Subnet", n.subnet],
    ["Last heard", n.lastHeartbeat ? ago(n.lastHeartbeat) : ""],
    ["Certificate", n.certificateExpiresAt ? "expires " + new Date(n.certificateExpiresAt).toLocaleString() : ""],
  ]);
  replaceIfChanged($("#node-actions"), [el("span", {}, availabilityButtons(n))]);
  const cap = n.capacity || {};
  const u = nodeUse(n);
  $("#node-capacity").replaceChildren(
    capacityBar("CPU", u.cpu, u.usedCpu, num(cap.milliCpus), millicores),
    capacityBar("Memory", u.memory, u.usedMemory, num(cap.memoryBytes), bytes),
    el("p", { class: "muted" }, u.tasks + (u.tasks === 1 ? " task holds" : " tasks hold") + " room here" +
      (currentNamespace() === ALL ? "" : " (in the namespace shown)") + "; use is live from the last sample."));
  const conds = n.conditions || [];
  $("#node-conditions tbody").replaceChildren(...(conds.length ? conds.map((c) => el("tr", { "data-condition": c.type },
    el("td", {}, c.type),
    el("td", { class: c.ok ? "status-ready" : "error" }, c.ok ? "ok" : "failing"),
    el("td", {}, c.message || ""),
    el("td", { class: "muted" }, ago(c.since)))) : [el("tr", {}, el("td", { class: "muted", colspan: "4" }, "no conditions reported"))]));
  const labels = (m, from) => Object.entries(m || {}).sort().map(([k, v]) => el("span", { class: "label", title: from }, k + "=" + v));
  $("#node-labels").replaceChildren(...labels(n.agentLabels, "from the agent's --label"), ...labels(n.operatorLabels, "set with berth node label"),
    ...(Object.keys(n.labels || {}).length ? [] : [el("span", { class: "muted" }, "no labels")]));
  lists["node-tasks"].render(shownTasks((t) => t.nodeId === n.meta.id), taskText, taskRow);
}

// --- images and registries ---------------------------------------------------------

const images = { nodes: [], registries: [], registriesNote: "", verdicts: new Map(), note: "" };

// loadImages lists the images on every node, the registries the cluster
// holds credentials for (admins only), the scans, and the signature state
// of each image in the namespace shown.
async function loadImages() {
  $("#images-refresh").disabled = true;
  const [imgs, regs] = await Promise.allSettled([
    call("ListImages"),
    can("ListRegistries") ? call("ListRegistries") : Promise.reject(new PermissionError("listing registries needs the admin role"))]);
  images.nodes = imgs.status === "fulfilled" ? imgs.value.nodes || [] : [];
  images.note = imgs.status === "rejected" ? imgs.reason.message : "";
  images.registries = regs.status === "fulfilled" ? regs.value.registries || [] : [];
  images.registriesNote = regs.status === "rejected" ? regs.reason.message : "";
  await refreshScans();
  images.verdicts = new Map();
  const ns = currentNamespace();
  const refs = new Map();
  for (const n of images.nodes) for (const i of n.images || []) if (i.digest) refs.set(i.name + "@" + i.digest, { image: i.name, digest: i.digest });
  if (can("VerifyImages") && ns !== ALL && refs.size) {
    try {
      const resp = await call("VerifyImages", { namespace: ns, images: [...refs.values()] });
      for (const v of resp.verdicts || []) images.verdicts.set(v.image + "@" + v.digest, v);
    } catch (e) { /* shown as unknown */ }
  }
  $("#images-refresh").disabled = false;
  render();
}

function signatureCell(i) {
  const v = images.verdicts.get(i.name + "@" + i.digest);
  if (!v) return el("td", { class: "muted" }, "-");
  const st = enumName(v.state, "SIGNATURE_STATE_").replace(/_/g, " ");
  return el("td", { class: st === "signed" ? "status-ready" : st === "unsigned" || st === "invalid" ? "warn" : "muted", "data-signature": st,
    title: [v.signer && "signed by " + v.signer, v.policy && "policy " + v.policy, v.error].filter(Boolean).join("; ") }, st);
}

function renderImagesPage() {
  $("#registries tbody").replaceChildren(...(images.registries.length ? images.registries.map((r) => el("tr", { "data-registry": r.registry },
    el("td", {}, r.registry), el("td", {}, r.username || ""))) : [el("tr", {}, el("td", { class: "muted", colspan: "2" }, images.registriesNote || "no registry credentials stored"))]));
  const scans = new Map(state.scans.map((r) => [r.digest, r]));
  $("#images-note").textContent = images.note;
  $("#images-nodes").replaceChildren(...images.nodes.map((n) => el("div", { class: "node-images", "data-node-images": n.nodeName },
    el("h3", {}, el("a", { href: nodeHref(n.nodeName) }, n.nodeName), " ", el("span", { class: "muted" }, (n.images || []).length + " images")),
    n.error ? el("p", { class: "error" }, n.error) : null,
    el("table", {},
      el("thead", {}, el("tr", {}, ["Image", "Digest", "Size", "Created", "Findings", "Signature"].map((h) => el("th", {}, h)))),
      el("tbody", {}, [...(n.images || [])].sort((a, b) => a.name.localeCompare(b.name)).map((i) => {
        const scan = scans.get(i.digest);
        const f = findings(scan);
        return el("tr", { "data-image": i.name },
          el("td", {}, i.name),
          el("td", { class: "muted endpoint", title: i.digest }, (i.digest || "").slice(0, 19)),
          el("td", { class: "num" }, bytes(i.size)),
          el("td", { class: "muted" }, ago(i.createdAt)),
          el("td", { class: !scan ? "muted" : f.total ? "findings" : "status-ready", "data-findings": scan ? String(f.total) : "" },
            !scan ? "not scanned" : f.total ? f.total + " (" + f.words + ")" : "none"),
          signatureCell(i));
      }))))));
}
