package ipam

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestAddressesNext(t *testing.T) {
	tests := []struct {
		name    string
		subnet  string
		held    []string // held before, by "other"
		taken   int      // addresses given (then released) before the ones checked
		want    []string
		wantErr string
	}{
		{"skips network and first host", "10.1.0.0/24", nil, 0, []string{"10.1.0.2", "10.1.0.3"}, ""},
		{"skips held", "10.1.0.0/24", []string{"10.1.0.2", "10.1.0.4"}, 0, []string{"10.1.0.3", "10.1.0.5"}, ""},
		{"freed ones come after the cursor", "10.1.0.0/24", nil, 3, []string{"10.1.0.5", "10.1.0.6"}, ""},
		{"wraps past the broadcast", "10.1.0.0/29", nil, 4, []string{"10.1.0.6", "10.1.0.2"}, ""},
		{"a /30 holds one", "10.1.0.0/30", nil, 0, []string{"10.1.0.2"}, ""},
		{"a /31 holds none", "10.1.0.0/31", nil, 0, nil, "network net has no free address (subnet /31 holds 0)"},
		{"full", "10.1.0.0/29", []string{"10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"}, 0, nil,
			"network net has no free address (subnet /29 holds 5)"},
		{"host bits are masked", "10.1.0.77/24", nil, 0, []string{"10.1.0.2"}, ""},
	}
	for _, tt := range tests {
		a, err := NewAddresses("net", tt.subnet)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		for _, h := range tt.held {
			if err := a.Hold(netip.MustParseAddr(h), "other"); err != nil {
				t.Fatalf("%s: hold %s: %v", tt.name, h, err)
			}
		}
		for range tt.taken {
			if _, err := a.Next("gone"); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
		}
		a.Release("gone")
		var got []string
		for range max(len(tt.want), 1) {
			addr, err := a.Next("me")
			if err != nil {
				if tt.wantErr == "" || err.Error() != tt.wantErr || !errors.Is(err, ErrNoAddress) {
					t.Errorf("%s: %v, want error %q", tt.name, err, tt.wantErr)
				}
				break
			}
			got = append(got, addr.String())
		}
		if tt.wantErr == "" && !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestAddressesTake(t *testing.T) {
	a, err := NewAddresses("net", "10.1.0.0/24")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Take(netip.MustParseAddr("10.1.0.9"), "other"); err != nil {
		t.Fatal(err)
	}
	if err := a.Take(netip.MustParseAddr("10.1.0.12"), VIPOwner("s1")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr    string
		wantErr string
	}{
		{"10.1.0.10", ""},
		{"10.1.0.9", "address 10.1.0.9 of network net is held by task other"},
		{"10.1.0.12", "held by the virtual IP of service s1"},
		{"10.1.0.0", "is reserved"},
		{"10.1.0.1", "is reserved"},
		{"10.1.0.255", "is reserved"},
		{"10.2.0.5", "not in subnet 10.1.0.0/24"},
	}
	for _, tt := range tests {
		err := a.Take(netip.MustParseAddr(tt.addr), "me")
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("Take(%s): %v", tt.addr, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Take(%s) = %v, want an error with %q", tt.addr, err, tt.wantErr)
		}
	}
	// Asking again for one's own address is no conflict.
	if err := a.Take(netip.MustParseAddr("10.1.0.10"), "me"); err != nil {
		t.Errorf("taking an address again: %v", err)
	}
	// Taking does not move the cursor.
	if got, _ := a.Next("x"); got.String() != "10.1.0.2" {
		t.Errorf("Next after Take = %s, want 10.1.0.2", got)
	}
	if a.Free() != 253-4 {
		t.Errorf("Free = %d, want %d", a.Free(), 253-4)
	}
}

func network(id, name, subnet string) *berthv1.Network {
	return &berthv1.Network{Meta: &berthv1.Meta{Id: id}, Namespace: "default", Name: name, Subnet: subnet}
}

func taskOn(id string, state berthv1.TaskState, nets ...*berthv1.TaskNetwork) *berthv1.Task {
	return &berthv1.Task{Meta: &berthv1.Meta{Id: id}, Status: &berthv1.TaskStatus{State: state}, Networks: nets}
}

func TestTaskHolds(t *testing.T) {
	tests := []struct {
		state berthv1.TaskState
		holds bool
	}{
		{berthv1.TaskState_TASK_STATE_PENDING, true},
		{berthv1.TaskState_TASK_STATE_RUNNING, true},
		{berthv1.TaskState_TASK_STATE_COMPLETE, false},
		{berthv1.TaskState_TASK_STATE_FAILED, false},
		{berthv1.TaskState_TASK_STATE_SHUTDOWN, false},
		{berthv1.TaskState_TASK_STATE_REJECTED, false},
		{berthv1.TaskState_TASK_STATE_ORPHANED, true},
	}
	for _, tt := range tests {
		if got := TaskHolds(taskOn("t", tt.state)); got != tt.holds {
			t.Errorf("%v: holds = %v, want %v", tt.state, got, tt.holds)
		}
	}
}

func TestNewPoolHoldsWhatIsInUse(t *testing.T) {
	front := network("n1", "app_front", "10.1.0.0/24")
	back := network("n2", "app_back", "10.2.0.0/24")
	running := berthv1.TaskState_TASK_STATE_RUNNING
	tasks := []*berthv1.Task{
		taskOn("t1", running, &berthv1.TaskNetwork{NetworkId: "n1", Address: "10.1.0.7/24"}),
		taskOn("t2", berthv1.TaskState_TASK_STATE_FAILED, &berthv1.TaskNetwork{NetworkId: "n1", Address: "10.1.0.9/24"}),
		taskOn("t3", berthv1.TaskState_TASK_STATE_ORPHANED, &berthv1.TaskNetwork{NetworkId: "n2", Address: "10.2.0.2/24"}),
		// Claims t1's address: left out and reported.
		taskOn("t4", running, &berthv1.TaskNetwork{NetworkId: "n1", Address: "10.1.0.7/24"}),
		// A network the pool does not know is skipped.
		taskOn("t5", running, &berthv1.TaskNetwork{NetworkId: "gone", Address: "10.3.0.2/24"}),
	}
	services := []*berthv1.Service{{
		Meta:     &berthv1.Meta{Id: "s1"},
		Endpoint: &berthv1.ServiceEndpoint{VirtualIps: []*berthv1.VirtualIP{{NetworkId: "n1", Address: "10.1.0.3"}}},
	}}
	p, errs := NewPool([]*berthv1.Network{front, back}, services, tasks)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "task t4") {
		t.Fatalf("errors %v, want one about task t4", errs)
	}
	a, _ := p.Network(front)
	if got := a.Held("t1"); len(got) != 1 || got[0].String() != "10.1.0.7" {
		t.Errorf("t1 holds %v", got)
	}
	if got := a.Held("t2"); len(got) != 0 {
		t.Errorf("a failed task holds %v", got)
	}
	// The cursor resumes after the highest address held.
	if got, _ := a.Next("new"); got.String() != "10.1.0.8" {
		t.Errorf("next on app_front = %s, want 10.1.0.8", got)
	}
	b, _ := p.Network(back)
	if got, _ := b.Next("new"); got.String() != "10.2.0.3" {
		t.Errorf("next on app_back = %s, want 10.2.0.3 (the orphaned task keeps .2)", got)
	}
	vip, err := p.VirtualIP("s1", front)
	if err != nil || vip.Address != "10.1.0.3" || vip.Network != "app_front" || vip.NetworkId != "n1" {
		t.Errorf("VirtualIP of s1 = %v, %v; want its stored 10.1.0.3", vip, err)
	}
}

func TestPoolAssignTask(t *testing.T) {
	front := network("n1", "app_front", "10.1.0.0/24")
	back := network("n2", "app_back", "10.2.0.0/28")
	back.Internal = true
	p, _ := NewPool([]*berthv1.Network{front, back}, nil, nil)
	spec := []*berthv1.ServiceNetwork{{Network: "app_front"}, {Network: "app_back", Ipv4Address: "10.2.0.9"}}
	nets := []*berthv1.Network{front, back}
	got, err := p.AssignTask("t1", spec, nets)
	if err != nil {
		t.Fatal(err)
	}
	want := []*berthv1.TaskNetwork{
		{NetworkId: "n1", Network: "app_front", Address: "10.1.0.2/24"},
		{NetworkId: "n2", Network: "app_back", Address: "10.2.0.9/28", Internal: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i].String() {
			t.Errorf("network %d: got %v, want %v", i, got[i], want[i])
		}
	}
	// The same fixed address for another task fails, and gives nothing:
	// its first network's address is freed again.
	if _, err := p.AssignTask("t2", spec, nets); err == nil || !strings.Contains(err.Error(), "held by task t1") {
		t.Fatalf("second task with the same ipv4_address: %v", err)
	}
	a, _ := p.Network(front)
	if held := a.Held("t2"); len(held) != 0 {
		t.Fatalf("a failed assignment still holds %v", held)
	}
	p.Release("t1")
	if _, err := p.AssignTask("t2", spec, nets); err != nil {
		t.Fatalf("after t1 ended: %v", err)
	}
	bad := []*berthv1.ServiceNetwork{{Network: "app_back", Ipv4Address: "fe80::1"}}
	if _, err := p.AssignTask("t3", bad, []*berthv1.Network{back}); err == nil || !strings.Contains(err.Error(), "not in subnet") {
		t.Errorf("an IPv6 ipv4_address: %v", err)
	}
}

func TestPoolVirtualIPIsStable(t *testing.T) {
	front := network("n1", "app_front", "10.1.0.0/24")
	p, _ := NewPool([]*berthv1.Network{front}, nil, nil)
	first, err := p.VirtualIP("s1", front)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := p.VirtualIP("s1", front)
	other, _ := p.VirtualIP("s2", front)
	if first.Address != again.Address || first.Address == other.Address {
		t.Fatalf("s1 got %s then %s, s2 %s: want s1's stable and s2's another", first.Address, again.Address, other.Address)
	}
	p.ReleaseVirtualIP("s1", "n1")
	if next, _ := p.VirtualIP("s1", front); next.Address == first.Address {
		t.Fatalf("a released virtual IP came back at once: %s", next.Address)
	}
	// A network made again with another subnet starts afresh.
	moved := network("n1", "app_front", "10.9.0.0/24")
	if v, _ := p.VirtualIP("s1", moved); !strings.HasPrefix(v.Address, "10.9.0.") {
		t.Fatalf("virtual IP %s is not in the network's new subnet", v.Address)
	}
}
