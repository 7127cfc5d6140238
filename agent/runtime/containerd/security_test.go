package containerd

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/berthproject/berth/agent/runtime"
)

func TestCapabilities(t *testing.T) {
	tests := []struct {
		name      string
		add, drop []string
		has, not  []string
		wantErr   string
	}{
		{"default", nil, nil, []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"}, []string{"CAP_NET_RAW", "CAP_SYS_ADMIN"}, ""},
		{"add with or without prefix", []string{"net_admin", "CAP_NET_RAW"}, nil, []string{"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_CHOWN"}, nil, ""},
		{"drop", nil, []string{"CHOWN", "kill"}, []string{"CAP_SETUID"}, []string{"CAP_CHOWN", "CAP_KILL"}, ""},
		{"drop all then add", []string{"NET_BIND_SERVICE"}, []string{"ALL"}, []string{"CAP_NET_BIND_SERVICE"}, []string{"CAP_CHOWN", "CAP_KILL"}, ""},
		{"unknown", []string{"FLY"}, nil, nil, nil, "cap_add: capability CAP_FLY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := capabilities(tc.add, tc.drop)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("capabilities = %v, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.has {
				if !slices.Contains(got, c) {
					t.Errorf("%v lacks %s", got, c)
				}
			}
			for _, c := range tc.not {
				if slices.Contains(got, c) {
					t.Errorf("%v has %s", got, c)
				}
			}
		})
	}
}

func TestParseDevice(t *testing.T) {
	tests := []struct {
		in                  string
		host, inside, perms string
		wantErr             bool
	}{
		{"/dev/fuse", "/dev/fuse", "", "rwm", false},
		{"/dev/sda:/dev/xvda", "/dev/sda", "/dev/xvda", "rwm", false},
		{"/dev/sda:r", "/dev/sda", "", "r", false},
		{"/dev/sda:/dev/xvda:rw", "/dev/sda", "/dev/xvda", "rw", false},
		{"dev/sda", "", "", "", true},
		{"/dev/sda:/dev/xvda:rwx", "", "", "", true},
		{"/a:/b:r:w", "", "", "", true},
	}
	for _, tc := range tests {
		host, inside, perms, err := parseDevice(tc.in)
		if (err != nil) != tc.wantErr || host != tc.host || inside != tc.inside || perms != tc.perms {
			t.Errorf("parseDevice(%q) = %q, %q, %q, %v", tc.in, host, inside, perms, err)
		}
	}
}

func TestParseSecurityOpt(t *testing.T) {
	tests := []struct {
		in      []string
		want    securityOptions
		wantErr bool
	}{
		{nil, securityOptions{}, false},
		{[]string{"no-new-privileges"}, securityOptions{}, false},
		{[]string{"no-new-privileges:true"}, securityOptions{}, false},
		{[]string{"no-new-privileges=false"}, securityOptions{newPrivileges: true}, false},
		{[]string{"seccomp:unconfined"}, securityOptions{seccompUnconfined: true}, false},
		{[]string{"seccomp=default"}, securityOptions{}, false},
		{[]string{"seccomp=/etc/profile.json"}, securityOptions{}, true},
		{[]string{"label=disable"}, securityOptions{}, true},
	}
	for _, tc := range tests {
		got, err := parseSecurityOpt(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseSecurityOpt(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestRlimit(t *testing.T) {
	tests := []struct {
		in         runtime.Ulimit
		typ        string
		soft, hard uint64
		wantErr    bool
	}{
		{runtime.Ulimit{Name: "nofile", Soft: 1024, Hard: 2048}, "RLIMIT_NOFILE", 1024, 2048, false},
		{runtime.Ulimit{Name: "NPROC", Soft: 100}, "RLIMIT_NPROC", 100, 100, false},
		{runtime.Ulimit{Name: "nofile", Soft: 10, Hard: 5}, "", 0, 0, true},
		{runtime.Ulimit{Name: "memlock", Soft: -1, Hard: -1}, "RLIMIT_MEMLOCK", math.MaxUint64, math.MaxUint64, false},
		{runtime.Ulimit{Name: "core", Soft: 0, Hard: -1}, "RLIMIT_CORE", 0, math.MaxUint64, false},
		{runtime.Ulimit{Name: "core", Soft: -1, Hard: 5}, "", 0, 0, true},
		{runtime.Ulimit{Name: "wings", Soft: 1}, "", 0, 0, true},
	}
	for _, tc := range tests {
		got, err := rlimit(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("rlimit(%+v) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got.Type != tc.typ || got.Soft != tc.soft || got.Hard != tc.hard {
			t.Errorf("rlimit(%+v) = %+v, %v", tc.in, got, err)
		}
	}
}
