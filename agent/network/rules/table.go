package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Table is one node's nftables table, `ip berth-<8 hex of the node
// name>`. Several agents may share a network namespace (tests do): each
// has its own table, and the marks they share mean the same to all.
// Table is safe for concurrent use; Applies are serialized.
type Table struct {
	name  string
	netns int

	mu   sync.Mutex
	last *Model // nil until an Apply succeeds, and after Destroy and errors
	// rewrites counts the Applies that wrote the whole table.
	rewrites int
}

// Option changes how New builds a Table.
type Option func(*Table)

// WithNetNS makes the Table write into the network namespace that fd
// refers to, instead of the calling thread's. The caller keeps fd open
// while it uses the Table.
func WithNetNS(fd int) Option {
	return func(t *Table) { t.netns = fd }
}

// New returns the table of the node named node. Nothing is written until
// Apply.
func New(node string, opts ...Option) *Table {
	sum := sha256.Sum256([]byte(node))
	t := &Table{name: "berth-" + hex.EncodeToString(sum[:])[:8]}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Name is the table's name in the ip family.
func (t *Table) Name() string { return t.name }

// Apply makes the table hold exactly m, in one netlink transaction, so
// every packet meets either the old ruleset or the new one. A model equal
// to the last one applied costs nothing. Otherwise Apply writes only what
// changed since the last Apply (see update.go), unless there is no last
// state to trust: on the first Apply, after an error, when the networks
// or the node range changed, or when the table is gone (deleted from
// outside). Then, or when the change fails (the table is not what the
// last Apply left), it replaces the whole table. A failed Apply leaves
// the table as it was and is retried in full by the next.
func (t *Table) Apply(m Model) error {
	m = m.Normalize()
	if err := m.Validate(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last != nil && t.last.Equal(m) {
		return nil
	}
	if t.last != nil && incremental(*t.last, m) && t.exists() {
		old := *t.last
		if err := t.write(func(r *ruleset) error { return r.update(old, m) }); err == nil {
			t.last = &m
			return nil
		}
	}
	t.last = nil
	t.rewrites++
	if err := t.write(func(r *ruleset) error { return r.replace(m) }); err != nil {
		return fmt.Errorf("write nftables table %s: %w", t.name, err)
	}
	t.last = &m
	return nil
}

// exists reports whether the table is in the kernel: one small request
// (about 0.2 ms), which spares a batch that could only fail when someone
// deleted the table, and catches it even when the change needs no
// message at all (an ingress port without endpoints).
func (t *Table) exists() bool {
	c, err := nftables.New(t.connOptions(nil)...)
	if err != nil {
		return false
	}
	_, err = c.ListTableOfFamily(t.name, nftables.TableFamilyIPv4)
	return err == nil
}

// Destroy deletes the table; a table that does not exist is not an error.
func (t *Table) Destroy() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last = nil
	if err := t.write(func(r *ruleset) error { r.remove(); return nil }); err != nil {
		return fmt.Errorf("delete nftables table %s: %w", t.name, err)
	}
	return nil
}

// write queues a batch with fill and sends it.
func (t *Table) write(fill func(*ruleset) error) error {
	// The batch goes in one sendmsg and every message is acknowledged
	// after the commit, before anything is read: both socket buffers must
	// hold the whole batch. Its size is known only once it is queued, so
	// the Conn, which dials on Flush, learns it through count.
	var count int
	c, err := nftables.New(t.connOptions(&count)...)
	if err != nil {
		return err
	}
	r := newRuleset(c, t.name)
	if err := fill(r); err != nil {
		return err
	}
	count = r.messages
	return c.Flush()
}

// connOptions are the options of a Conn on the table's namespace; the
// socket buffers are sized for *messages messages, once known, when
// messages is not nil.
func (t *Table) connOptions(messages *int) []nftables.ConnOption {
	var opts []nftables.ConnOption
	if messages != nil {
		opts = append(opts, nftables.WithSockOptions(func(c *netlink.Conn) error {
			return sizeBuffers(c, *messages)
		}))
	}
	if t.netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(t.netns))
	}
	return opts
}

// Bytes of socket buffer per queued message: a rule is a few hundred
// bytes on the way in, an acknowledgement about as much kernel memory on
// the way back.
const bufferPerMessage = 1024

// sizeBuffers grows the socket's buffers to hold messages messages. The
// forced variants pass over net.core.[rw]mem_max and need CAP_NET_ADMIN,
// which writing nftables needs anyway; the plain ones are the fallback.
func sizeBuffers(c *netlink.Conn, messages int) error {
	size := max(messages*bufferPerMessage, 1<<20)
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		for _, o := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], size) == nil {
				continue
			}
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], size); e != nil {
				serr = errors.Join(serr, fmt.Errorf("socket buffer: %w", e))
			}
		}
	})
	return errors.Join(err, serr)
}
