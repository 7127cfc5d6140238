package network

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Attached lists the ids of the containers that hold anything of this
// node's network: an attachment record (finished or not), or a network
// namespace named with the node's prefix under NetNSDir, which a crash
// between making it and writing the record leaves alone. The node's sweep
// detaches the ones no task needs; Detach removes either kind.
func (n *Node) Attached() ([]string, error) {
	ids, err := n.records.ids()
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	entries, err := os.ReadDir(n.cfg.NetNSDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("network: list network namespaces in %s: %w", n.cfg.NetNSDir, err)
	}
	prefix := netnsPrefix(n.cfg.Name)
	for _, e := range entries {
		if id, ok := strings.CutPrefix(e.Name(), prefix); ok && validateID(id) == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
