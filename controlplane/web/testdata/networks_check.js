// Runs serviceNetworks from the dashboard's scripts (given as the
// arguments) against a minimal DOM and prints each network's cell as text,
// one per line, with the endpoints' readiness.
const fs = require("fs");
const src = process.argv.slice(2).map((f) => fs.readFileSync(f, "utf8")).join("\n");
class FakeNode {
  constructor(tag) { this.tag = tag; this.attrs = {}; this.kids = []; }
  setAttribute(k, v) { this.attrs[k] = v; }
  addEventListener() {}
  append(c) { this.kids.push(c); }
  get text() {
    const own = this.kids.map((k) => (k instanceof FakeNode ? k.text : k)).join("");
    return this.attrs["data-ready"] ? own + "(" + (this.attrs["data-ready"] === "true" ? "ready" : "not ready") + ")" : own;
  }
}
global.Node = FakeNode;
global.document = { createElement: (t) => new FakeNode(t) };
const cut = (from, to) => src.slice(src.indexOf(from), src.indexOf(to));
eval(cut("function el(", "class AuthError") + cut("// inService mirrors", "// serviceCounts counts") + `
const s = {
  spec: { networks: [{ network: "shop_front" }, { network: "shop_back" }] },
  endpoint: { virtualIps: [{ network: "shop_front", address: "10.1.0.3" }] },
};
const run = "TASK_STATE_RUNNING";
const tasks = [
  { desiredState: run, status: { state: run }, networks: [{ network: "shop_front", address: "10.1.0.5/24" }] },
  { desiredState: run, status: { state: run, health: "HEALTH_UNHEALTHY" }, networks: [{ network: "shop_front", address: "10.1.0.8/24" }] },
  { desiredState: "TASK_STATE_SHUTDOWN", status: { state: run }, networks: [{ network: "shop_front", address: "10.1.0.6/24" }] },
  { desiredState: run, status: { state: "TASK_STATE_FAILED" }, networks: [{ network: "shop_front", address: "10.1.0.7/24" }] },
];
for (const d of serviceNetworks(s, tasks)) console.log(d.text);
`);
