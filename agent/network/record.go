package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthproject/berth/agent/network/rules"
)

// record is what the network remembers about one attachment, on disk, so
// that after an agent restart the container's links, ports and DNS server
// are known again, and Detach knows what to remove.
type record struct {
	ID        string `json:"id"`
	NetNSPath string `json:"netns"`
	// Done is false while the attachment is being set up: a record that
	// is not done marks an Attach that did not finish.
	Done  bool   `json:"done,omitempty"`
	Links []Link `json:"links,omitempty"`
	Ports []Port `json:"ports,omitempty"`
	// Servers are the container's own resolvers (the service's dns:).
	Servers []string `json:"servers,omitempty"`
}

// local is the container as the node's rules see it.
func (r record) local() rules.Local {
	l := rules.Local{ID: r.ID}
	for _, link := range r.Links {
		l.Addresses = append(l.Addresses, link.Address.Addr())
	}
	for _, p := range r.Ports {
		hp := rules.Port{Protocol: p.Protocol, Published: uint16(p.Published), Target: uint16(p.Target)}
		if p.HostIP != "" {
			hp.HostIP, _ = netip.ParseAddr(p.HostIP) // normalized on the way in
		}
		l.HostPorts = append(l.HostPorts, hp)
	}
	return l
}

// records stores one JSON file per attachment in dir.
type records struct{ dir string }

const recordExt = ".json"

func (r records) path(id string) string { return filepath.Join(r.dir, id+recordExt) }

// get returns the record of id, or ok == false if there is none.
func (r records) get(id string) (rec record, ok bool, err error) {
	b, err := os.ReadFile(r.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, fmt.Errorf("read attachment record: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return record{}, false, fmt.Errorf("decode attachment record %s: %w; delete the file after removing the netns and iptables rules of %q by hand", r.path(id), err, id)
	}
	return rec, true, nil
}

// put writes rec atomically: a crash leaves the old record or the new one,
// never a torn file.
func (r records) put(rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode attachment record: %w", err)
	}
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return fmt.Errorf("create attachment record directory: %w", err)
	}
	tmp, err := os.CreateTemp(r.dir, rec.ID+".tmp*")
	if err != nil {
		return fmt.Errorf("write attachment record: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write attachment record: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync attachment record: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write attachment record: %w", err)
	}
	if err := os.Rename(tmp.Name(), r.path(rec.ID)); err != nil {
		return fmt.Errorf("write attachment record: %w", err)
	}
	return nil
}

func (r records) remove(id string) error {
	if err := os.Remove(r.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove attachment record: %w", err)
	}
	return nil
}

// ids lists the ids that have a record.
func (r records) ids() ([]string, error) {
	entries, err := os.ReadDir(r.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list attachment records: %w", err)
	}
	var ids []string
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(name, recordExt) {
			ids = append(ids, strings.TrimSuffix(name, recordExt))
		}
	}
	return ids, nil
}
