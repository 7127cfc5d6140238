package validation

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string // substring; "" means valid
	}{
		{name: "web"},
		{name: "my_app-2"},
		{name: "0day"},
		{name: strings.Repeat("a", 63)},
		{name: "", wantErr: "app name is empty"},
		{name: "My App", wantErr: `for example "my-app"`},
		{name: "-web", wantErr: `for example "web"`},
		{name: strings.Repeat("a", 64), wantErr: "at most 63"},
		{name: "a.b", wantErr: `invalid app name "a.b"`},
	}
	for _, tt := range tests {
		err := ValidateName("app", tt.name)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ValidateName(%q) = %v, want nil", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ValidateName(%q) = %v, want error containing %q", tt.name, err, tt.wantErr)
		}
	}
}

// validSpec returns a spec with every field set to a valid value.
func validSpec() *berthv1.ServiceSpec {
	return &berthv1.ServiceSpec{
		Image:        "localhost/busybox:latest",
		Command:      []string{"httpd", "-f"},
		Env:          []string{"A=1", "B="},
		WorkingDir:   "/www",
		Labels:       map[string]string{"tier": "web"},
		Ports:        []*berthv1.PortSpec{{Target: 80, Published: 8080, Protocol: "tcp"}, {Target: 53, Published: 8080, Protocol: "udp"}},
		Mode:         berthv1.ServiceMode_SERVICE_MODE_REPLICATED,
		Replicas:     2,
		Limits:       &berthv1.Resources{MilliCpus: 1000, MemoryBytes: 1 << 30},
		Reservations: &berthv1.Resources{MilliCpus: 500, MemoryBytes: 1 << 20},
		Placement: &berthv1.Placement{
			Constraints:        []string{"node.labels.zone==eu"},
			Preferences:        []string{"node.labels.rack"},
			MaxReplicasPerNode: 1,
			Platforms:          []*berthv1.Platform{{Os: "linux", Architecture: "amd64"}},
		},
		StopSignal:      "TERM",
		StopGracePeriod: durationpb.New(3 * time.Second),
		RestartPolicy: &berthv1.RestartPolicy{
			Condition: berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE,
			Delay:     durationpb.New(time.Second),
		},
		UpdateConfig: &berthv1.UpdateConfig{
			Parallelism:     2,
			Delay:           durationpb.New(time.Second),
			FailureAction:   berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK,
			Monitor:         durationpb.New(10 * time.Second),
			MaxFailureRatio: 0.25,
			Order:           berthv1.UpdateOrder_UPDATE_ORDER_START_FIRST,
		},
		RollbackConfig: &berthv1.UpdateConfig{
			FailureAction: berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE,
		},
		Strategy: berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK,
	}
}

func TestValidateSpec(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*berthv1.ServiceSpec)
		want   []string // "field: reason substring", in order; empty means valid
	}{
		{name: "valid", modify: func(*berthv1.ServiceSpec) {}},
		{name: "global ignores replicas", modify: func(s *berthv1.ServiceSpec) {
			s.Mode, s.Replicas, s.Placement.MaxReplicasPerNode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL, 5, 0
		}},
		{name: "replicas at the limit", modify: func(s *berthv1.ServiceSpec) { s.Replicas = MaxReplicasLimit }},
		{name: "replicas over the limit", modify: func(s *berthv1.ServiceSpec) { s.Replicas = 100000000000 },
			want: []string{"deploy.replicas: 100000000000 replicas is over the cluster's cap of 1000000"}},
		{name: "global ignores huge replicas", modify: func(s *berthv1.ServiceSpec) {
			s.Mode, s.Replicas, s.Placement.MaxReplicasPerNode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL, 100000000000, 0
		}},
		{name: "defaults unset", modify: func(s *berthv1.ServiceSpec) {
			*s = berthv1.ServiceSpec{Image: "busybox", Ports: []*berthv1.PortSpec{{Target: 80}}}
		}},
		{name: "numeric stop signal", modify: func(s *berthv1.ServiceSpec) { s.StopSignal = "15" }},
		{name: "json-file logging", modify: func(s *berthv1.ServiceSpec) {
			s.Logging = &berthv1.LogConfig{Driver: "json-file", MaxSize: 1000, MaxFile: 2}
		}},
		{name: "bad logging", modify: func(s *berthv1.ServiceSpec) {
			s.Logging = &berthv1.LogConfig{Driver: "syslog", MaxSize: 10, MaxFile: 1000}
		}, want: []string{
			`logging.driver: log driver "syslog" is not supported`,
			"logging.options.max-size: 10 bytes is under the smallest log file",
			"logging.options.max-file: 1000 must be from 1 to 100",
		}},
		{name: "missing image", modify: func(s *berthv1.ServiceSpec) { s.Image = "" },
			want: []string{"image: image is required"}},
		{name: "bad image", modify: func(s *berthv1.ServiceSpec) { s.Image = "Busybox" },
			want: []string{"image: \"Busybox\" is not a valid image reference"}},
		{name: "relative working dir", modify: func(s *berthv1.ServiceSpec) { s.WorkingDir = "www" },
			want: []string{"working_dir: \"www\" is not an absolute path"}},
		{name: "env", modify: func(s *berthv1.ServiceSpec) { s.Env = []string{"A=1", "NOVALUE", "=x", "A=2"} },
			want: []string{
				`environment[1]: "NOVALUE" is not KEY=VALUE`,
				`environment[2]: "=x" has an empty variable name`,
				"environment[3]: variable A is set twice",
			}},
		{name: "ports out of range", modify: func(s *berthv1.ServiceSpec) {
			s.Ports = []*berthv1.PortSpec{{Target: 0, Published: 70000}, {Target: 70000}}
		}, want: []string{
			"ports[0].target: 0 is out of range 1-65535",
			"ports[0].published: 70000 is out of range",
			"ports[1].target: 70000 is out of range 1-65535",
		}},
		{name: "bad protocol and host ip", modify: func(s *berthv1.ServiceSpec) {
			s.Ports = []*berthv1.PortSpec{{Target: 80, Protocol: "sctp", HostIp: "localhost"}}
		}, want: []string{`ports[0].protocol: "sctp" is not supported`, `ports[0].host_ip: "localhost" is not an IP address`}},
		{name: "duplicate published port", modify: func(s *berthv1.ServiceSpec) {
			s.Ports = []*berthv1.PortSpec{{Target: 80, Published: 8080}, {Target: 81, Published: 8080, Protocol: "TCP"}}
		}, want: []string{"ports[1].published: tcp port 8080 is already published by ports[0]"}},
		{name: "wildcard overlaps one address", modify: func(s *berthv1.ServiceSpec) {
			s.Ports = []*berthv1.PortSpec{{Target: 80, Published: 8080, HostIp: "127.0.0.1"}, {Target: 81, Published: 8080, HostIp: "0.0.0.0"}}
		}, want: []string{"ports[1].published: tcp port 8080 is already published by ports[0]"}},
		{name: "distinct addresses may share a port", modify: func(s *berthv1.ServiceSpec) {
			s.Ports = []*berthv1.PortSpec{{Target: 80, Published: 8080, HostIp: "127.0.0.1"}, {Target: 81, Published: 8080, HostIp: "127.0.0.2"}}
		}},
		{name: "negative resources", modify: func(s *berthv1.ServiceSpec) {
			s.Limits = &berthv1.Resources{MilliCpus: -1, MemoryBytes: -2}
			s.Reservations = nil
		}, want: []string{"deploy.resources.limits.cpus: -1 millicores is negative", "deploy.resources.limits.memory: -2 bytes is negative"}},
		{name: "reservations above limits", modify: func(s *berthv1.ServiceSpec) {
			s.Reservations = &berthv1.Resources{MilliCpus: 1500, MemoryBytes: 2 << 30}
		}, want: []string{
			"deploy.resources.reservations.cpus: reserves 1.5 CPUs, more than the limit of 1",
			"deploy.resources.reservations.memory: reserves 2147483648 bytes",
		}},
		{name: "reservations without limits", modify: func(s *berthv1.ServiceSpec) {
			s.Limits, s.Reservations = nil, &berthv1.Resources{MilliCpus: 8000}
		}},
		{name: "bad placement", modify: func(s *berthv1.ServiceSpec) {
			s.Placement = &berthv1.Placement{Constraints: []string{"zone=eu"}, Preferences: []string{"node.hostname"}}
		}, want: []string{
			"deploy.placement.constraints[0]: constraint \"zone=eu\": expected KEY==VALUE",
			`deploy.placement.preferences[0]: cannot spread over "node.hostname"`,
		}},
		{name: "memory limit too small", modify: func(s *berthv1.ServiceSpec) {
			s.Limits.MemoryBytes, s.Reservations = 4<<20, nil
		}, want: []string{"deploy.resources.limits.memory: 4194304 bytes (4 MiB) is too little for a container to start; give at least 6m"}},
		{name: "memory limit of exactly 6 MiB", modify: func(s *berthv1.ServiceSpec) {
			s.Limits.MemoryBytes, s.Reservations = MinMemoryLimit, nil
		}},
		{name: "memory reservation may be small", modify: func(s *berthv1.ServiceSpec) {
			s.Reservations = &berthv1.Resources{MemoryBytes: 1000}
		}},
		{name: "max replicas per node in global mode", modify: func(s *berthv1.ServiceSpec) {
			s.Mode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL
		}, want: []string{"deploy.placement.max_replicas_per_node: applies only to replicated services"}},
		{name: "platforms", modify: func(s *berthv1.ServiceSpec) {
			s.Placement.Platforms = []*berthv1.Platform{
				{Os: "linux"}, {Architecture: "x86_64"}, {Os: "linux", Architecture: "arm/v7"},
				{Os: "linx", Architecture: "amd64"}, {Os: "linux", Architecture: "amd46"}, {}, nil,
				{Os: "linux", Architecture: "/v7"}, {Os: "linux", Architecture: "arm/v 7"},
			}
		}, want: []string{
			`platform[3]: unknown operating system "linx"; use one of`,
			`platform[4]: unknown architecture "amd46"; use one of`,
			"platform[5]: names neither an operating system nor an architecture; write it like linux/amd64",
			"platform[6]: platform is missing",
			`platform[7]: unknown architecture ""`,
			`platform[8]: variant "v 7" is not a name like v7 or v8`,
		}},
		{name: "one platform is named like the Compose key", modify: func(s *berthv1.ServiceSpec) {
			s.Placement.Platforms = []*berthv1.Platform{{Os: "linux", Architecture: "sparc"}}
		}, want: []string{`platform: unknown architecture "sparc"`}},
		{name: "bad strategy", modify: func(s *berthv1.ServiceSpec) { s.Strategy = 9 },
			want: []string{"x-berth.strategy: unknown strategy 9; use spread or binpack"}},
		{name: "update config defaults unset", modify: func(s *berthv1.ServiceSpec) {
			s.UpdateConfig, s.RollbackConfig = &berthv1.UpdateConfig{}, &berthv1.UpdateConfig{}
		}},
		{name: "update config out of range", modify: func(s *berthv1.ServiceSpec) {
			s.UpdateConfig = &berthv1.UpdateConfig{
				FailureAction:   7,
				Order:           5,
				MaxFailureRatio: 1.5,
				Delay:           durationpb.New(-time.Second),
				Monitor:         durationpb.New(-2 * time.Second),
			}
		}, want: []string{
			"deploy.update_config.failure_action: unknown failure action 7; use pause, continue or rollback",
			"deploy.update_config.order: unknown order 5; use stop-first or start-first",
			"deploy.update_config.max_failure_ratio: 1.5 is outside 0 to 1",
			"deploy.update_config.delay: -1s is negative",
			"deploy.update_config.monitor: -2s is negative",
		}},
		{name: "negative and NaN failure ratios", modify: func(s *berthv1.ServiceSpec) {
			s.UpdateConfig.MaxFailureRatio = -0.1
			s.RollbackConfig.MaxFailureRatio = math.NaN()
		}, want: []string{
			"deploy.update_config.max_failure_ratio: -0.1 is outside 0 to 1",
			"deploy.rollback_config.max_failure_ratio: NaN is outside 0 to 1",
		}},
		{name: "rollback on a failed rollback", modify: func(s *berthv1.ServiceSpec) {
			s.RollbackConfig.FailureAction = berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK
		}, want: []string{"deploy.rollback_config.failure_action: rollback is not valid in rollback_config: a failed rollback has no earlier spec to return to; use pause or continue"}},
		{name: "global start-first with host ports is allowed", modify: func(s *berthv1.ServiceSpec) {
			s.Mode, s.Placement.MaxReplicasPerNode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL, 0
			s.UpdateConfig.Order = berthv1.UpdateOrder_UPDATE_ORDER_START_FIRST
		}},
		{name: "bad mode", modify: func(s *berthv1.ServiceSpec) { s.Mode = 7 },
			want: []string{"deploy.mode: unknown mode 7"}},
		{name: "bad stop signal", modify: func(s *berthv1.ServiceSpec) { s.StopSignal = "SIGFOO" },
			want: []string{`stop_signal: unknown signal "SIGFOO"`}},
		{name: "bad signal number", modify: func(s *berthv1.ServiceSpec) { s.StopSignal = "99" },
			want: []string{"stop_signal: 99 is not a signal number"}},
		{name: "negative durations", modify: func(s *berthv1.ServiceSpec) {
			s.StopGracePeriod = durationpb.New(-time.Second)
			s.RestartPolicy = &berthv1.RestartPolicy{Condition: 9, Delay: durationpb.New(-time.Second), Window: &durationpb.Duration{Seconds: 1, Nanos: -1}}
		}, want: []string{
			"stop_grace_period: -1s is negative",
			"deploy.restart_policy.condition: unknown condition 9",
			"deploy.restart_policy.delay: -1s is negative",
			"deploy.restart_policy.window: invalid duration",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := validSpec()
			tt.modify(spec)
			errs := ValidateSpec("web", spec)
			if len(errs) != len(tt.want) {
				t.Fatalf("ValidateSpec() = %d problems:\n%v\nwant %d: %q", len(errs), errs, len(tt.want), tt.want)
			}
			for i, want := range tt.want {
				if errs[i].Service != "web" {
					t.Errorf("problem %d: Service = %q, want web", i, errs[i].Service)
				}
				got := errs[i].Field + ": " + errs[i].Reason
				if !strings.HasPrefix(got, want) && !strings.Contains(got, want) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got, want)
				}
			}
		})
	}
}

func TestValidateApply(t *testing.T) {
	svc := func(name string, spec *berthv1.ServiceSpec) *berthv1.Service {
		return &berthv1.Service{Name: name, Spec: spec}
	}
	req := &berthv1.ApplyRequest{
		Namespace: "",
		App:       "Shop",
		Services: []*berthv1.Service{
			svc("web", validSpec()),
			svc("web", validSpec()),
			svc("Bad Name", validSpec()),
			nil,
			svc("db", nil),
			svc("worker", &berthv1.ServiceSpec{}),
		},
	}
	want := []string{
		"namespace: namespace name is empty",
		`app: invalid app name "Shop"`,
		`service "web": service is defined twice`,
		`services[2].name: invalid service name "Bad Name"`,
		"services[3]: service is missing",
		`service "db": spec: spec is missing`,
		`service "worker": image: image is required`,
	}
	errs := ValidateApply(req)
	if len(errs) != len(want) {
		t.Fatalf("ValidateApply() = %d problems:\n%v\nwant %d", len(errs), errs, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("problem %d = %q, want prefix %q", i, errs[i].Error(), w)
		}
	}

	ok := &berthv1.ApplyRequest{Namespace: "default", App: "shop", Services: []*berthv1.Service{svc("web", validSpec())}}
	if errs := ValidateApply(ok); errs.Err() != nil {
		t.Errorf("ValidateApply(valid) = %v", errs)
	}
}

func TestFieldErrorFormat(t *testing.T) {
	tests := []struct {
		err  FieldError
		want string
	}{
		{FieldError{File: "compose.yaml", Service: "web", Field: "ports[0].published", Reason: "70000 is out of range 1-65535"},
			`compose.yaml: service "web": ports[0].published: 70000 is out of range 1-65535`},
		{FieldError{File: "compose.yaml", Line: 7, Reason: "bad"}, "compose.yaml:7: bad"},
		{FieldError{Field: "app", Reason: "bad"}, "app: bad"},
		{FieldError{Service: "db", Reason: "bad"}, `service "db": bad`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	errs := Errors{tests[0].err, tests[2].err}
	if got, want := errs.Error(), tests[0].want+"\n"+tests[2].want; got != want {
		t.Errorf("Errors.Error() = %q, want %q", got, want)
	}
	if err := Errors(nil).Err(); err != nil {
		t.Errorf("empty Errors.Err() = %v, want nil", err)
	}
	if got := errs.WithFile("other.yaml"); got[0].File != "compose.yaml" || got[1].File != "other.yaml" || errs[1].File != "" {
		t.Errorf("WithFile() = %v (original %v)", got, errs)
	}
}

func TestGRPCStatusRoundTrip(t *testing.T) {
	errs := Errors{
		{File: "compose.yaml", Line: 3, Service: "web", Field: "ports[0].published", Reason: "70000 is out of range 1-65535"},
		{Service: "db", Reason: "service is defined twice"},
		{Field: "app", Reason: "app name is empty"},
	}
	st := errs.GRPCStatus()
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code = %v, want InvalidArgument", st.Code())
	}
	// Through the wire form, as a client sees it.
	wire := status.ErrorProto(st.Proto())
	got, ok := FromError(fmt.Errorf("apply: %w", wire))
	if !ok {
		t.Fatalf("FromError(%v) found no field errors", wire)
	}
	// File and Line stay on the client side.
	want := Errors{
		{Service: "web", Field: "ports[0].published", Reason: "70000 is out of range 1-65535"},
		{Service: "db", Reason: "service is defined twice"},
		{Field: "app", Reason: "app name is empty"},
	}
	if len(got) != len(want) {
		t.Fatalf("FromError() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("error %d = %#v, want %#v", i, got[i], want[i])
		}
	}
	if !strings.Contains(st.Message(), errs[0].Error()) {
		t.Errorf("status message %q does not list the problems", st.Message())
	}

	// A handler returning Errors directly is converted by grpc through the
	// GRPCStatus method.
	if s, ok := status.FromError(errs.Err()); !ok || s.Code() != codes.InvalidArgument {
		t.Errorf("status.FromError(Errors) = %v, %v", s, ok)
	}
	if direct, ok := FromError(fmt.Errorf("wrapped: %w", errs)); !ok || len(direct) != 3 || direct[0].File != "compose.yaml" {
		t.Errorf("FromError(wrapped Errors) = %v, %v", direct, ok)
	}
	for _, err := range []error{nil, errors.New("plain"), status.Error(codes.InvalidArgument, "no details"), status.Error(codes.NotFound, "x")} {
		if got, ok := FromError(err); ok {
			t.Errorf("FromError(%v) = %v, true; want false", err, got)
		}
	}
}

func TestNormalize(t *testing.T) {
	spec := &berthv1.ServiceSpec{
		Image:      "busybox",
		Env:        []string{"Z=1", "A=2", "M=3"},
		Ports:      []*berthv1.PortSpec{{Target: 80}, {Target: 53, Protocol: "UDP"}},
		StopSignal: "int",
	}
	Normalize(spec)
	want := &berthv1.ServiceSpec{
		Image: "busybox",
		Env:   []string{"A=2", "M=3", "Z=1"},
		Ports: []*berthv1.PortSpec{
			{Target: 80, Protocol: "tcp", Mode: berthv1.PublishMode_PUBLISH_MODE_INGRESS},
			{Target: 53, Protocol: "udp", Mode: berthv1.PublishMode_PUBLISH_MODE_INGRESS},
		},
		Mode:            berthv1.ServiceMode_SERVICE_MODE_REPLICATED,
		EndpointMode:    berthv1.EndpointMode_ENDPOINT_MODE_VIP,
		StopSignal:      "SIGINT",
		StopGracePeriod: durationpb.New(10 * time.Second),
		RestartPolicy: &berthv1.RestartPolicy{
			Condition: berthv1.RestartCondition_RESTART_CONDITION_ANY,
		},
	}
	if !proto.Equal(spec, want) {
		t.Fatalf("Normalize() =\n%v\nwant\n%v", spec, want)
	}
	again := proto.Clone(spec).(*berthv1.ServiceSpec)
	Normalize(again)
	if !proto.Equal(again, spec) {
		t.Errorf("Normalize is not idempotent:\n%v\nthen\n%v", spec, again)
	}

	// Values that are set, including zero durations, are kept.
	set := &berthv1.ServiceSpec{
		Mode:            berthv1.ServiceMode_SERVICE_MODE_GLOBAL,
		StopSignal:      "9",
		StopGracePeriod: durationpb.New(0),
		RestartPolicy:   &berthv1.RestartPolicy{Condition: berthv1.RestartCondition_RESTART_CONDITION_NONE, Delay: durationpb.New(0)},
	}
	Normalize(set)
	if set.Mode != berthv1.ServiceMode_SERVICE_MODE_GLOBAL || set.StopSignal != "SIGKILL" ||
		set.StopGracePeriod.AsDuration() != 0 || set.RestartPolicy.Condition != berthv1.RestartCondition_RESTART_CONDITION_NONE ||
		set.RestartPolicy.Delay.AsDuration() != 0 {
		t.Errorf("Normalize() changed set values: %v", set)
	}
	Normalize(nil) // must not panic
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		name string
		num  int
	}{
		{"SIGTERM", "SIGTERM", 15}, {"TERM", "SIGTERM", 15}, {"term", "SIGTERM", 15}, {"15", "SIGTERM", 15},
		{"SIGIOT", "SIGABRT", 6}, {"40", "40", 40}, {"SIGWINCH", "SIGWINCH", 28},
	}
	for _, tt := range tests {
		name, num, err := ParseSignal(tt.in)
		if err != nil || name != tt.name || num != tt.num {
			t.Errorf("ParseSignal(%q) = %q, %d, %v; want %q, %d", tt.in, name, num, err, tt.name, tt.num)
		}
	}
	for _, bad := range []string{"", "0", "65", "SIGNOPE", "-1"} {
		if _, _, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) succeeded, want error", bad)
		}
	}
}
