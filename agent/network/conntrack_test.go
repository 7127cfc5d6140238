package network

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/berthproject/berth/agent/network/rules"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestStaleUDPFlows(t *testing.T) {
	a := netip.MustParseAddr
	ap := netip.MustParseAddrPort
	vip := func(addr string, eps ...string) rules.VIP {
		v := rules.VIP{Address: a(addr)}
		for _, ep := range eps {
			v.Endpoints = append(v.Endpoints, a(ep))
		}
		return v
	}
	port := func(proto string, p uint16, eps ...string) rules.Published {
		pub := rules.Published{Protocol: proto, Port: p}
		for _, ep := range eps {
			pub.Endpoints = append(pub.Endpoints, ap(ep))
		}
		return pub
	}
	viaVIP := func(ep, v string) staleUDP { return staleUDP{Endpoint: a(ep), VIP: a(v)} }
	viaPort := func(ep string, p uint16) staleUDP { return staleUDP{Endpoint: a(ep), Port: p} }

	tests := []struct {
		name     string
		old, new rules.Model
		want     []staleUDP
	}{
		{"nothing", rules.Model{}, rules.Model{}, nil},
		{"same", rules.Model{VIPs: []rules.VIP{vip("10.0.0.2", "10.0.0.5")}}, rules.Model{VIPs: []rules.VIP{vip("10.0.0.2", "10.0.0.5")}}, nil},
		{"endpoint joins a VIP",
			rules.Model{VIPs: []rules.VIP{vip("10.0.0.2", "10.0.0.5")}},
			rules.Model{VIPs: []rules.VIP{vip("10.0.0.2", "10.0.0.5", "10.0.0.6")}},
			nil},
		{"endpoint leaves a VIP",
			rules.Model{VIPs: []rules.VIP{vip("10.0.0.2", "10.0.0.5", "10.0.0.6")}},
			rules.Model{VIPs: []rules.VIP{vip("10.0.0.2", "10.0.0.6")}},
			[]staleUDP{viaVIP("10.0.0.5", "10.0.0.2")}},
		{"last endpoint leaves a VIP",
			rules.Model{VIPs: []rules.VIP{vip("10.0.0.2", "10.0.0.5")}},
			rules.Model{VIPs: []rules.VIP{vip("10.0.0.2")}},
			[]staleUDP{viaVIP("10.0.0.5", "10.0.0.2")}},
		{"VIP gone",
			rules.Model{VIPs: []rules.VIP{vip("10.0.0.2", "10.0.0.6", "10.0.0.5"), vip("10.0.0.3", "10.0.0.7")}},
			rules.Model{VIPs: []rules.VIP{vip("10.0.0.3", "10.0.0.7")}},
			[]staleUDP{viaVIP("10.0.0.5", "10.0.0.2"), viaVIP("10.0.0.6", "10.0.0.2")}},
		{"endpoint leaves one VIP of two",
			rules.Model{VIPs: []rules.VIP{vip("10.0.0.2", "10.0.0.5"), vip("10.1.0.2", "10.0.0.5")}},
			rules.Model{VIPs: []rules.VIP{vip("10.0.0.2"), vip("10.1.0.2", "10.0.0.5")}},
			[]staleUDP{viaVIP("10.0.0.5", "10.0.0.2")}},
		{"endpoint leaves a UDP ingress port",
			rules.Model{Ingress: []rules.Published{port("udp", 53, "10.0.0.5:5353", "10.0.0.6:5353")}},
			rules.Model{Ingress: []rules.Published{port("udp", 53, "10.0.0.6:5353")}},
			[]staleUDP{viaPort("10.0.0.5", 53)}},
		{"UDP ingress port gone",
			rules.Model{Ingress: []rules.Published{port("UDP", 53, "10.0.0.5:5353")}},
			rules.Model{},
			[]staleUDP{viaPort("10.0.0.5", 53)}},
		{"ingress endpoint changes its target port",
			rules.Model{Ingress: []rules.Published{port("udp", 53, "10.0.0.5:5353")}},
			rules.Model{Ingress: []rules.Published{port("udp", 53, "10.0.0.5:53")}},
			[]staleUDP{viaPort("10.0.0.5", 53)}},
		{"endpoint leaves a TCP ingress port",
			rules.Model{Ingress: []rules.Published{port("tcp", 53, "10.0.0.5:53"), port("udp", 53, "10.0.0.5:53")}},
			rules.Model{Ingress: []rules.Published{port("udp", 53, "10.0.0.5:53")}},
			nil},
		{"endpoint leaves the TCP port but not the UDP one of a number",
			rules.Model{Ingress: []rules.Published{port("udp", 53, "10.0.0.5:53"), port("tcp", 53, "10.0.0.5:53")}},
			rules.Model{Ingress: []rules.Published{port("tcp", 53)}},
			[]staleUDP{viaPort("10.0.0.5", 53)}},
		{"VIP and ingress port at once, sorted",
			rules.Model{
				VIPs:    []rules.VIP{vip("10.0.0.3", "10.0.0.9"), vip("10.0.0.2", "10.0.0.8", "10.0.0.5")},
				Ingress: []rules.Published{port("udp", 9000, "10.0.0.5:9000"), port("udp", 80, "10.0.0.5:80")},
			},
			rules.Model{VIPs: []rules.VIP{vip("10.0.0.3", "10.0.0.9")}},
			[]staleUDP{viaPort("10.0.0.5", 80), viaPort("10.0.0.5", 9000), viaVIP("10.0.0.5", "10.0.0.2"), viaVIP("10.0.0.8", "10.0.0.2")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := staleUDPFlows(tt.old, tt.new); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("staleUDPFlows = %v, want %v", got, tt.want)
			}
		})
	}
}

// echoUDPIn answers every datagram to addr, inside the namespace at path,
// with name, until the test ends.
func echoUDPIn(t *testing.T, path, addr, name string) {
	t.Helper()
	var c net.PacketConn
	must(t, path, func() (err error) {
		c, err = net.ListenPacket("udp4", addr)
		return err
	})
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 64)
		for {
			_, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			c.WriteTo([]byte(name), from)
		}
	})
	t.Cleanup(func() {
		c.Close()
		wg.Wait()
	})
}

// udpClient sends from one address and port of a container, as a client
// with a long-lived UDP socket does.
type udpClient struct {
	conn net.PacketConn
	to   net.Addr
}

func newUDPClient(t *testing.T, path, to string) *udpClient {
	t.Helper()
	var c net.PacketConn
	must(t, path, func() (err error) {
		c, err = net.ListenPacket("udp4", ":0")
		return err
	})
	t.Cleanup(func() { c.Close() })
	return &udpClient{conn: c, to: net.UDPAddrFromAddrPort(netip.MustParseAddrPort(to))}
}

// ask sends one datagram and returns the answer, if one comes soon.
func (c *udpClient) ask() (string, error) {
	if _, err := c.conn.WriteTo([]byte("who?"), c.to); err != nil {
		return "", err
	}
	buf := make([]byte, 64)
	c.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	n, _, err := c.conn.ReadFrom(buf)
	return string(buf[:n]), err
}

// expectAnswer polls until the client is answered by one of want, and
// returns which.
func (c *udpClient) expectAnswer(t *testing.T, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got string
	var err error
	for time.Now().Before(deadline) {
		got, err = c.ask()
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			break
		}
		for _, w := range want {
			if err == nil && got == w {
				return got
			}
		}
	}
	t.Fatalf("UDP from %s to %s: answered %q, err %v; want one of %v", c.conn.LocalAddr(), c.to, got, err, want)
	return ""
}

// TestNodeUDPFollowsEndpoints sends UDP from one source port to a VIP, and
// to an ingress port, with two endpoints each: when the endpoint that
// answers leaves, the next datagram goes to the other, though the first
// still runs and conntrack would keep sending the client there until the
// client fell silent.
func TestNodeUDPFollowsEndpoints(t *testing.T) {
	tests := []struct {
		name string
		to   string
	}{
		{"VIP", "10.128.0.2:9000"},
		// The node's own address: the client comes from a container, as
		// any client outside would come from another link.
		{"ingress port", nodeAddress + ":9053"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := newTestNode(t)
			webs := map[string]Attachment{
				"web-1": tn.mustAttach(spec("web-1", "10.128.0.5/24")),
				"web-2": tn.mustAttach(spec("web-2", "10.128.0.7/24")),
			}
			client := tn.mustAttach(spec("client-1", "10.128.0.6/24"))
			for id, a := range webs {
				echoUDPIn(t, a.NetNSPath, ":9000", id)
			}

			m := shopMap(tn, true)
			m.Services[0].Ports = []*berthv1.PortSpec{{Protocol: "udp", Published: 9053, Target: 9000}}
			m.Tasks = append(m.Tasks, &berthv1.NetworkTask{
				Id: "web-2", ServiceId: "s-web", NodeId: tn.cfg.NodeID, Slot: 2, Ready: true,
				Networks: []*berthv1.TaskNetwork{{NetworkId: "n1", Network: "shop_default", Address: "10.128.0.7/24"}},
			})
			tn.n.SetMap(m)

			c := newUDPClient(t, client.NetNSPath, tt.to)
			first := c.expectAnswer(t, "web-1", "web-2")
			other := map[string]string{"web-1": "web-2", "web-2": "web-1"}[first]
			// The flow stays with its endpoint while it is ready.
			for range 5 {
				if got, err := c.ask(); err == nil && got != first {
					t.Fatalf("answered by %s, then by %s, with both ready", first, got)
				}
			}

			// A new message: the map keeps the old one's tasks.
			var leaving *berthv1.NetworkTask
			for _, task := range m.Tasks {
				if task.GetId() == first {
					leaving = proto.CloneOf(task)
				}
			}
			leaving.Ready = false
			tn.n.SetMap(&berthv1.NetworkMap{Tasks: []*berthv1.NetworkTask{leaving}})
			c.expectAnswer(t, other)

			for id := range webs {
				tn.mustDetach(id)
			}
			tn.mustDetach("client-1")
			tn.expectNoContainers()
		})
	}
}

// TestDeleteConntrackError checks that a namespace the entries cannot be
// deleted in is an error (the Node logs it), not a panic or a hang.
func TestDeleteConntrackError(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stale := []staleUDP{{Endpoint: netip.MustParseAddr("10.0.0.5"), VIP: netip.MustParseAddr("10.0.0.2")}}
	if _, err := deleteConntrack(int(f.Fd()), stale); err == nil {
		t.Error("deleteConntrack in /dev/null's namespace succeeded, want an error")
	}
}
