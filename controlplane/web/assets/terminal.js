// The dashboard's terminal: a command in a task's container (`berth exec
// -it`), drawn by xterm.js (vendor/), over the WebSocket at /exec/ws that
// the server bridges to the Exec call. The API token goes in the first
// message, never in the URL; the server checks it, and the Exec call's
// role (deployer), as for the JSON API.
"use strict";

const EXEC_PATH = "/exec/ws";

// terminal is the open session: its WebSocket, xterm and task.
let terminal = null;

function setExecStatus(st, words) {
  const s = $("#exec-status");
  s.setAttribute("data-state", st);
  s.className = "exec-" + st;
  s.textContent = words;
}

// openTerminal runs command in the task's container on a terminal sized
// to the page, unless a session in that task is open already.
function openTerminal(ns, taskId, command) {
  if (terminal && terminal.task === taskId && terminal.command === command) return;
  closeTerminal();
  const t = state.tasks.get(taskId);
  const name = t ? taskName(t) : taskId.slice(0, 12);
  $("#exec-title").textContent = name;
  $("#exec-back").setAttribute("href", t ? serviceHref(t.namespace, t.app, t.service) : "#/tasks");
  $("#exec-command").value = command;
  const box = $("#terminal");
  box.replaceChildren();
  if (!can("Exec")) {
    setExecStatus("error", "A terminal needs the deployer role. " + roleHint());
    return;
  }
  if (typeof Terminal === "undefined" || typeof FitAddon === "undefined") {
    setExecStatus("error", "the terminal's script (vendor/xterm.js) did not load");
    return;
  }
  const term = new Terminal({ cursorBlink: true, fontSize: 13, fontFamily: "ui-monospace, Menlo, Consolas, monospace", scrollback: 5000,
    theme: { background: "#0d1117", foreground: "#e6edf3" } });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(box);
  fit.fit();
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + EXEC_PATH);
  ws.binaryType = "arraybuffer";
  const encoder = new TextEncoder();
  const session = { ws, term, fit, task: taskId, command, ended: false };
  setExecStatus("connecting", "connecting to " + name + "…");
  ws.onopen = () => {
    ws.send(JSON.stringify({ token: token(), start: {
      namespace: ns, taskId, command: command.split(/\s+/).filter(Boolean), tty: true, stdin: true,
      size: { width: term.cols, height: term.rows } } }));
    term.focus();
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data !== "string") { term.write(new Uint8Array(ev.data)); return; }
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    if (m.taskId) setExecStatus("open", command + " in " + name);
    else if ("exitCode" in m) { session.ended = true; setExecStatus("exited", command + " exited with code " + m.exitCode); }
    else if (m.error) { session.ended = true; setExecStatus("error", m.error.message); term.write("\r\n\x1b[31m" + m.error.message + "\x1b[0m\r\n"); }
  };
  ws.onclose = (ev) => {
    if (!session.ended && terminal === session) setExecStatus("closed", "the connection closed" + (ev.reason ? ": " + ev.reason : ""));
  };
  term.onData((d) => { if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(d)); });
  term.onResize(({ cols, rows }) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ resize: { width: cols, height: rows } }));
  });
  session.onResize = () => fit.fit();
  window.addEventListener("resize", session.onResize);
  terminal = session;
}

function closeTerminal() {
  if (!terminal) return;
  window.removeEventListener("resize", terminal.onResize);
  terminal.ws.close();
  terminal.term.dispose();
  terminal = null;
}

// terminalText is what the terminal shows, line by line, for tests.
function terminalText() {
  if (!terminal) return "";
  const buf = terminal.term.buffer.active;
  const lines = [];
  for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i).translateToString(true));
  return lines.join("\n");
}

document.addEventListener("DOMContentLoaded", () => {
  $("#exec-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const cmd = $("#exec-command").value.trim() || "sh";
    closeTerminal();
    location.hash = href("exec", route.ns, route.task) + "?cmd=" + encodeURIComponent(cmd);
    if (route.view === "exec") openTerminal(route.ns, route.task, cmd);
  });
});
