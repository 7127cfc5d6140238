package store

// NodeNamesPrefix holds one claim per node name, whose value is the id of
// the node that holds it: a name stays bound to the node (and the
// certificate) that joined with it until `berth node rm` frees it, and two
// agents joining at once with one name never both get it.
const NodeNamesPrefix = Root + "node-names/"

// NodeNameKey is the claim on node name.
func NodeNameKey(name string) string { return NodeNamesPrefix + name }
