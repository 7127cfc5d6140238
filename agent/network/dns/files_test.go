package dns

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestResolvConf(t *testing.T) {
	tests := []struct {
		name            string
		search, options []string
		want            string
	}{
		{"app only", []string{"shop"}, nil,
			"nameserver 127.0.0.11\nsearch shop\noptions ndots:0\n"},
		{"no search", nil, nil,
			"nameserver 127.0.0.11\noptions ndots:0\n"},
		{"service's search and options after", []string{"shop", "corp.example", "example"}, []string{"timeout:1", "rotate"},
			"nameserver 127.0.0.11\nsearch shop corp.example example\noptions ndots:0 timeout:1 rotate\n"},
		{"duplicates and blanks go", []string{"shop", "shop", " ", "corp.example", "corp.example"}, []string{"rotate", "rotate", ""},
			"nameserver 127.0.0.11\nsearch shop corp.example\noptions ndots:0 rotate\n"},
		{"service's ndots replaces ndots:0", []string{"shop"}, []string{"ndots:2", "attempts:3", "attempts:5"},
			"nameserver 127.0.0.11\nsearch shop\noptions ndots:2 attempts:5\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(ResolvConf(tt.search, tt.options)); got != tt.want {
				t.Errorf("ResolvConf(%q, %q) =\n%s\nwant\n%s", tt.search, tt.options, got, tt.want)
			}
		})
	}
}

func TestHosts(t *testing.T) {
	const head = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	tests := []struct {
		name     string
		hostname string
		addr     netip.Addr
		extra    []*berthv1.ExtraHost
		want     string
	}{
		{"own address", "web-1", netip.MustParseAddr("10.128.0.5"), nil,
			head + "10.128.0.5\tweb-1\n"},
		{"extra hosts in order", "web-1", netip.MustParseAddr("10.128.0.5"), []*berthv1.ExtraHost{
			{Hostname: "db.example", Address: "192.0.2.7"},
			{Hostname: "v6.example", Address: "2001:db8::1"},
			{Hostname: "", Address: "192.0.2.8"},
			{Hostname: "noaddr.example"},
		}, head + "10.128.0.5\tweb-1\n192.0.2.7\tdb.example\n2001:db8::1\tv6.example\n"},
		{"no address (no network)", "web-1", netip.Addr{}, nil, head},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Hosts(tt.hostname, tt.addr, tt.extra)); got != tt.want {
				t.Errorf("Hosts =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestHostname(t *testing.T) {
	if got := string(Hostname("web-1")); got != "web-1\n" {
		t.Errorf("Hostname = %q", got)
	}
	long := strings.Repeat("a", 70)
	tests := []struct{ spec, id, want string }{
		{"gateway", "abc", "gateway"},
		{"", "abc", "abc"},
		{"", long, long[:63]},
	}
	for _, tt := range tests {
		if got := TaskHostname(tt.spec, tt.id); got != tt.want {
			t.Errorf("TaskHostname(%q, %q) = %q, want %q", tt.spec, tt.id, got, tt.want)
		}
	}
}

func TestNodeResolvers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		path string
		want []string
	}{
		{"nameservers", write("a", "# comment\nsearch example.com\nnameserver 192.0.2.53\nnameserver  127.0.0.53 \noptions edns0\nnameserver 2001:db8::53\nnameserver fe80::1%eth0\n"),
			[]string{"192.0.2.53:53", "127.0.0.53:53", "[2001:db8::53]:53", "[fe80::1%eth0]:53"}},
		{"bad lines skipped", write("b", "nameserver\nnameserver not-an-ip\nnameserver 192.0.2.1\n"),
			[]string{"192.0.2.1:53"}},
		{"none: the local server", write("c", "search example.com\n"), []string{"127.0.0.1:53"}},
		{"no file: the local server", filepath.Join(dir, "missing"), []string{"127.0.0.1:53"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NodeResolvers(tt.path); !slices.Equal(got, tt.want) {
				t.Errorf("NodeResolvers = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUpstreamAddrs(t *testing.T) {
	got := upstreamAddrs([]string{"1.1.1.1", "9.9.9.9:5353", "[2001:db8::1]:53", "2001:db8::2", "dns.example", ""})
	want := []string{"1.1.1.1:53", "9.9.9.9:5353", "[2001:db8::1]:53", "[2001:db8::2]:53"}
	if !slices.Equal(got, want) {
		t.Errorf("upstreamAddrs = %q, want %q", got, want)
	}
}
