package compose

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// writeProject writes files (name to content) into a new directory and
// returns it.
func writeProject(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "proj")
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadDir loads dir/compose.yaml (and the other named files, in order)
// with an empty environment unless opts sets one.
func loadDir(t *testing.T, dir string, opts Options, files ...string) (*Project, error) {
	t.Helper()
	if len(files) == 0 {
		files = []string{"compose.yaml"}
	}
	for _, f := range files {
		opts.Files = append(opts.Files, filepath.Join(dir, f))
	}
	if opts.Environment == nil {
		opts.Environment = map[string]string{}
	}
	return Load(context.Background(), opts)
}

// defaults returns spec with Normalize's defaults, for expectations, and
// the default network of project "proj" when it names no network.
func defaults(spec *berthv1.ServiceSpec) *berthv1.ServiceSpec {
	if spec.Replicas == 0 {
		spec.Replicas = 1
	}
	if spec.Networks == nil {
		spec.Networks = []*berthv1.ServiceNetwork{{Network: "proj_default"}}
	}
	validation.Normalize(spec)
	return spec
}

func dur(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func TestLoadConvertsSupportedKeys(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		opts  Options
		// loaded are the file names given to Load; default compose.yaml.
		loaded []string
		// want is the spec of service "web".
		want *berthv1.ServiceSpec
	}{
		{
			name: "container keys",
			files: map[string]string{"compose.yaml": `
services:
  web:
    image: localhost/busybox:latest
    command: httpd -f -p "8080"
    entrypoint: ["/bin/sh", "-c"]
    environment:
      B: "2"
      A: one
      UNSET:
    working_dir: /www
    user: "1000:1000"
    labels:
      tier: front
    stop_signal: SIGINT
    stop_grace_period: 1m30s
`},
			want: defaults(&berthv1.ServiceSpec{
				Image:           "localhost/busybox:latest",
				Command:         []string{"httpd", "-f", "-p", "8080"},
				Entrypoint:      []string{"/bin/sh", "-c"},
				Env:             []string{"A=one", "B=2"},
				WorkingDir:      "/www",
				User:            "1000:1000",
				Labels:          map[string]string{"tier": "front"},
				StopSignal:      "SIGINT",
				StopGracePeriod: dur(90 * time.Second),
			}),
		},
		{
			name: "ports short and long syntax",
			files: map[string]string{"compose.yaml": `
services:
  web:
    image: busybox
    ports:
      - "8080:80"
      - "127.0.0.1:5353:53/udp"
      - "9000-9001:90-91"
      - "7000"
      - target: 443
        published: "8443"
        host_ip: 127.0.0.2
        protocol: tcp
        mode: host
`},
			want: defaults(&berthv1.ServiceSpec{
				Image: "busybox",
				Ports: []*berthv1.PortSpec{
					{Target: 80, Published: 8080},
					{Target: 53, Published: 5353, Protocol: "udp", HostIp: "127.0.0.1"},
					{Target: 90, Published: 9000},
					{Target: 91, Published: 9001},
					{Target: 7000},
					{Target: 443, Published: 8443, HostIp: "127.0.0.2", Mode: berthv1.PublishMode_PUBLISH_MODE_HOST},
				},
			}),
		},
		{
			name: "deploy",
			files: map[string]string{"compose.yaml": `
services:
  web:
    image: busybox
    deploy:
      mode: replicated
      replicas: 3
      resources:
        limits: {cpus: "1.5", memory: 512M}
        reservations: {cpus: "0.25", memory: 64m}
      placement:
        constraints: [node.labels.zone==eu, node.hostname!=db-1]
        preferences:
          - spread: node.labels.rack
      restart_policy:
        condition: on-failure
        delay: 2s
        max_attempts: 4
        window: 1m
`},
			want: defaults(&berthv1.ServiceSpec{
				Image:        "busybox",
				Replicas:     3,
				Limits:       &berthv1.Resources{MilliCpus: 1500, MemoryBytes: 512 << 20},
				Reservations: &berthv1.Resources{MilliCpus: 250, MemoryBytes: 64 << 20},
				Placement: &berthv1.Placement{
					Constraints: []string{"node.labels.zone==eu", "node.hostname!=db-1"},
					Preferences: []string{"node.labels.rack"},
				},
				RestartPolicy: &berthv1.RestartPolicy{
					Condition:   berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE,
					Delay:       dur(2 * time.Second),
					MaxAttempts: 4,
					Window:      dur(time.Minute),
				},
			}),
		},
		{
			name:  "global mode",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    deploy:\n      mode: global\n"},
			want:  defaults(&berthv1.ServiceSpec{Image: "busybox", Mode: berthv1.ServiceMode_SERVICE_MODE_GLOBAL}),
		},
		{
			name:  "zero replicas",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    deploy:\n      replicas: 0\n"},
			want: func() *berthv1.ServiceSpec {
				s := &berthv1.ServiceSpec{Image: "busybox", Networks: []*berthv1.ServiceNetwork{{Network: "proj_default"}}}
				validation.Normalize(s)
				return s
			}(),
		},
		{
			name:  "scale",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    scale: 4\n"},
			want:  defaults(&berthv1.ServiceSpec{Image: "busybox", Replicas: 4}),
		},
		{
			name:  "restart no",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    restart: \"no\"\n"},
			want: defaults(&berthv1.ServiceSpec{Image: "busybox", RestartPolicy: &berthv1.RestartPolicy{
				Condition: berthv1.RestartCondition_RESTART_CONDITION_NONE}}),
		},
		{
			name:  "restart unless-stopped",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    restart: unless-stopped\n"},
			want:  defaults(&berthv1.ServiceSpec{Image: "busybox"}),
		},
		{
			name:  "restart on-failure:3",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    restart: on-failure:3\n"},
			want: defaults(&berthv1.ServiceSpec{Image: "busybox", RestartPolicy: &berthv1.RestartPolicy{
				Condition: berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE, MaxAttempts: 3}}),
		},
		{
			name:  "deploy restart_policy wins over restart",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    restart: \"no\"\n    deploy:\n      restart_policy:\n        condition: any\n"},
			want:  defaults(&berthv1.ServiceSpec{Image: "busybox"}),
		},
		{
			name: ".env interpolation, the environment winning",
			files: map[string]string{
				".env":         "TAG=1.36\nPORT=8080\n",
				"compose.yaml": "services:\n  web:\n    image: busybox:${TAG}\n    ports: [\"${PORT}:80\"]\n    environment:\n      - MODE=${MODE:-dev}\n",
			},
			opts: Options{Environment: map[string]string{"PORT": "9090"}},
			want: defaults(&berthv1.ServiceSpec{
				Image: "busybox:1.36",
				Ports: []*berthv1.PortSpec{{Target: 80, Published: 9090}},
				Env:   []string{"MODE=dev"},
			}),
		},
		{
			name: "env_file, environment winning",
			files: map[string]string{
				"web.env":      "A=from-file\nB=from-file\n# comment\n",
				"compose.yaml": "services:\n  web:\n    image: busybox\n    env_file: web.env\n    environment:\n      B: inline\n",
			},
			want: defaults(&berthv1.ServiceSpec{Image: "busybox", Env: []string{"A=from-file", "B=inline"}}),
		},
		{
			name: "extends from the same and another file",
			files: map[string]string{
				"base.yaml": "services:\n  common:\n    image: busybox\n    environment: {LEVEL: base}\n    labels: {team: core}\n",
				"compose.yaml": `
services:
  mid:
    extends: {file: base.yaml, service: common}
    command: ["sleep", "1"]
  web:
    extends: mid
    environment: {LEVEL: web}
`,
			},
			want: defaults(&berthv1.ServiceSpec{
				Image:   "busybox",
				Command: []string{"sleep", "1"},
				Env:     []string{"LEVEL=web"},
				Labels:  map[string]string{"team": "core"},
			}),
		},
		{
			name: "override file",
			files: map[string]string{
				"compose.yaml":  "services:\n  web:\n    image: busybox\n    deploy: {replicas: 2}\n",
				"override.yaml": "services:\n  web:\n    image: busybox:musl\n",
			},
			loaded: []string{"compose.yaml", "override.yaml"},
			want:   defaults(&berthv1.ServiceSpec{Image: "busybox:musl", Replicas: 2}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, tt.files)
			p, err := loadDir(t, dir, tt.opts, tt.loaded...)
			if err != nil {
				t.Fatalf("Load() error:\n%v", err)
			}
			i := slices.IndexFunc(p.Services, func(s *berthv1.Service) bool { return s.GetName() == "web" })
			if i < 0 {
				t.Fatalf("Load() services = %v, want one named web", p.Services)
			}
			if got := p.Services[i].GetSpec(); !proto.Equal(got, tt.want) {
				t.Errorf("spec of web =\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

func TestLoadProjectAndProfiles(t *testing.T) {
	files := map[string]string{"compose.yaml": `
services:
  web:
    image: busybox
  debug:
    image: busybox
    profiles: [debug]
    cpu_shares: 512
  api:
    image: busybox
`}
	tests := []struct {
		name     string
		opts     Options
		app      string
		services []string
	}{
		{name: "directory name", app: "proj", services: []string{"api", "web"}},
		{name: "profile enabled", opts: Options{Profiles: []string{"debug"}}, app: "proj", services: []string{"api", "debug", "web"}},
		{name: "profile from environment", opts: Options{Environment: map[string]string{"COMPOSE_PROFILES": "debug"}}, app: "proj", services: []string{"api", "debug", "web"}},
		{name: "explicit project", opts: Options{Project: "shop"}, app: "shop", services: []string{"api", "web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := loadDir(t, writeProject(t, files), tt.opts)
			if err != nil {
				t.Fatalf("Load() error:\n%v", err)
			}
			var names []string
			for _, s := range p.Services {
				names = append(names, s.GetName())
			}
			if p.App != tt.app || !slices.Equal(names, tt.services) {
				t.Errorf("Load() = app %q services %v, want %q %v", p.App, names, tt.app, tt.services)
			}
			// The disabled service's unsupported key is not worth a warning.
			if hasDebug := slices.Contains(names, "debug"); hasDebug != (len(p.Warnings) == 1) {
				t.Errorf("warnings = %q with services %v", p.Warnings, names)
			}
		})
	}

	named := writeProject(t, map[string]string{"compose.yaml": "name: my-shop\nservices:\n  web:\n    image: busybox\n"})
	if p, err := loadDir(t, named, Options{}); err != nil || p.App != "my-shop" {
		t.Errorf("Load(name: my-shop) = %v, %v", p, err)
	}
	if _, err := loadDir(t, named, Options{Project: "My Shop"}); err == nil || !strings.Contains(err.Error(), `invalid project name "My Shop"`) {
		t.Errorf("Load(Project: My Shop) error = %v, want invalid project name", err)
	}
}

// TestLoadDefaultFileAndWarnings loads compose.yaml from the working
// directory, so messages show the file as users name it.
func TestLoadDefaultFileAndWarnings(t *testing.T) {
	dir := writeProject(t, map[string]string{"compose.yaml": `
services:
  web:
    image: busybox
    restart: always
    volumes:
      - "data:/data"
      - type: bind
        source: ./site
        target: /site
        bind: {create_host_path: false}
    secrets: [token]
    networks: [back]
    depends_on: [db]
    cap_add: [NET_ADMIN]
    privileged: true
    cpu_shares: 512
    x-custom: ignored
    deploy:
      labels: {a: b}
      endpoint_mode: dnsrr
      update_config: {parallelism: 2}
      restart_policy: {condition: on-failure}
      resources:
        limits: {cpus: "0.5", pids: 10}
    ports:
      - name: http
        target: 80
        app_protocol: http
      - name: https
        target: 443
  db:
    image: busybox
    build: {context: ., labels: {a: b}}
networks:
  back: {}
volumes:
  data: {}
secrets:
  token: {file: ./token, template_driver: golang}
`, "token": "t0k3n"})
	t.Chdir(dir)
	t.Setenv("COMPOSE_FILE", "")
	p, err := Load(context.Background(), Options{Environment: map[string]string{}})
	if err != nil {
		t.Fatalf("Load() error:\n%v", err)
	}
	want := []string{
		`compose.yaml: service "web": restart is overridden by deploy.restart_policy and is ignored`,
		`compose.yaml: secrets.token.template_driver is not supported yet and is ignored`,
		`compose.yaml: service "db": build.labels is not supported yet and is ignored`,
		`compose.yaml: service "web": cpu_shares is not supported yet and is ignored`,
		`compose.yaml: service "web": deploy.labels is not supported yet and is ignored`,
		`compose.yaml: service "web": ports[].app_protocol is not supported yet and is ignored`,
		`compose.yaml: service "web": ports[].name is not supported yet and is ignored`,
		`compose.yaml: service "web": volumes[].bind is not supported yet and is ignored`,
	}
	if !slices.Equal(p.Warnings, want) {
		t.Errorf("Warnings =\n%s\nwant\n%s", strings.Join(p.Warnings, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		// want are substrings of the problems, in order; each problem must
		// also name the file.
		want []string
	}{
		{
			name:  "unknown key",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    imagee: busybox\n"},
			want:  []string{`compose.yaml:3: service "web": imagee: unknown key "imagee"; did you mean "image"?`},
		},
		{
			name:  "unknown nested keys",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    deploy:\n      replica: 2\n"},
			want:  []string{`compose.yaml:5: service "web": deploy.replica: unknown key "replica"; did you mean "replicas"?`},
		},
		{
			name:  "broken YAML",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n   ports: [\n"},
			// The parser places this one on the line before the bad one.
			want: []string{`compose.yaml:3: invalid YAML: did not find expected key (while parsing a block mapping at line 1, column 3)`},
		},
		{
			name:  "broken YAML in an override file",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n", "other.yaml": "services:\n  web: [\n"},
			want:  []string{`other.yaml:2: invalid YAML: did not find expected node content (while parsing a flow node)`},
		},
		{
			name:  "invalid short port",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    ports:\n      - \"8080:80\"\n      - \"70000:80\"\n"},
			want:  []string{`compose.yaml:6: service "web": ports[1]: "70000:80" is not a valid port`},
		},
		{
			name:  "invalid long port",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    ports:\n      - target: 80\n        published: 70000\n"},
			want:  []string{`compose.yaml:6: service "web": ports[0].published: 70000 is out of range 1-65535`},
		},
		{
			name:  "range of host ports smaller than the replicas",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    ports: [\"8000-8001:80\"]\n    deploy: {replicas: 3}\n"},
			want:  []string{`compose.yaml:4: service "web": ports[0].published: the range 8000-8001 has 2 ports for 3 replicas`},
		},
		{
			name:  "duplicate published port",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    ports: [\"8080:80\", \"8080:81\"]\n"},
			want:  []string{`service "web": ports[1].published: tcp port 8080 is already published by ports[0]`},
		},
		{
			name: "bad constraint",
			files: map[string]string{"compose.yaml": `services:
  web:
    image: busybox
    deploy:
      placement:
        constraints: ["zone==eu"]
`},
			want: []string{`compose.yaml:6: service "web": deploy.placement.constraints[0]: constraint "zone==eu": unknown key "zone"`},
		},
		{
			name:  "missing image",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    command: [sh]\n  ok:\n    image: busybox\n"},
			want:  []string{`compose.yaml:2: service "web": image: image is required`},
		},
		{
			name:  "several problems at once",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    restart: sometimes\n    stop_signal: SIGNOPE\n  my_api:\n    image: busybox\n"},
			want: []string{
				`compose.yaml:6: service "my_api": service name "my_api" is not a valid DNS name`,
				`compose.yaml:4: service "web": restart: unknown restart policy "sometimes"`,
				`compose.yaml:5: service "web": stop_signal: unknown signal "SIGNOPE"`,
			},
		},
		{
			name:  "bad mode",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    deploy: {mode: replicated-job}\n"},
			want:  []string{`service "web": deploy.mode: mode "replicated-job" is not supported; use replicated or global`},
		},
		{
			name:  "wrong type",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    deploy: {replicas: many}\n"},
			want:  []string{`compose.yaml:4: service "web": deploy.replicas:`},
		},
		{
			name:  "missing variable",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: ${IMAGE:?set IMAGE to the image to run}\n"},
			want:  []string{`compose.yaml`, `set IMAGE to the image to run`},
		},
		{
			name:  "unknown top-level key",
			files: map[string]string{"compose.yaml": "servics:\n  web:\n    image: busybox\n"},
			want:  []string{`compose.yaml:1: servics: unknown key "servics"; did you mean "services"?`},
		},
		{
			name:  "scale and replicas differ",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    scale: 2\n    deploy: {replicas: 3}\n"},
			want:  []string{`compose.yaml:5: service "web": deploy.replicas: 3 differs from scale: 2; set only one of them`},
		},
		{
			name:  "negative replicas",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    deploy: {replicas: -1}\n"},
			want:  []string{`service "web": deploy.replicas`},
		},
		{
			name:  "missing env_file",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    env_file: web.env\n"},
			want:  []string{`compose.yaml: env file`, `web.env not found`},
		},
		{
			name:  "extends an unknown service",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    extends: base\n"},
			want:  []string{`compose.yaml:2: service "web": cannot extend service "web"`, `service "base" not found`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, tt.files)
			loaded := []string{"compose.yaml"}
			if _, ok := tt.files["other.yaml"]; ok {
				loaded = append(loaded, "other.yaml")
			}
			p, err := loadDir(t, dir, Options{}, loaded...)
			if err == nil {
				t.Fatalf("Load() = %v, want an error", p)
			}
			var errs validation.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load() error %T %v, want validation.Errors", err, err)
			}
			for _, fe := range errs {
				if !strings.HasPrefix(fe.File, dir) {
					t.Errorf("problem %q: File = %q, want a file in %s", fe.Error(), fe.File, dir)
				}
			}
			msg := err.Error()
			last := 0
			for _, w := range tt.want {
				i := strings.Index(msg[last:], w)
				if i < 0 {
					t.Fatalf("Load() error:\n%s\nwant, in order: %q", msg, tt.want)
				}
				last += i + len(w)
			}
		})
	}
}

func TestLoadNoFile(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("COMPOSE_FILE", "")
	_, err := Load(context.Background(), Options{Environment: map[string]string{}})
	if err == nil || !strings.Contains(err.Error(), "no Compose file found") {
		t.Errorf("Load() error = %v, want no Compose file found", err)
	}
	_, err = Load(context.Background(), Options{Files: []string{"missing.yaml"}, Environment: map[string]string{}})
	if err == nil || !strings.Contains(err.Error(), "missing.yaml: cannot read the Compose file: no such file or directory") {
		t.Errorf("Load(missing.yaml) error = %v", err)
	}
}

// TestHelloExample keeps examples/hello loadable and warning-free.
func TestHelloExample(t *testing.T) {
	p, err := Load(context.Background(), Options{
		Files:       []string{filepath.Join("..", "..", "examples", "hello", "compose.yaml")},
		Environment: map[string]string{},
	})
	if err != nil {
		t.Fatalf("Load(examples/hello) error:\n%v", err)
	}
	if p.App != "hello" || len(p.Services) != 2 || len(p.Warnings) != 0 {
		t.Fatalf("Load(examples/hello) = app %q, %d services, warnings %q", p.App, len(p.Services), p.Warnings)
	}
	web, worker := p.Services[0].GetSpec(), p.Services[1].GetSpec()
	if web.GetReplicas() != 1 || len(web.GetPorts()) != 1 || web.GetPorts()[0].GetPublished() != 8080 ||
		!slices.Equal(web.GetCommand(), []string{"httpd", "-f", "-p", "8080", "-h", "/www"}) {
		t.Errorf("web = %v", web)
	}
	if worker.GetReplicas() != 3 || !slices.Equal(worker.GetCommand(), []string{"sh", "-c", "while true; do echo working; sleep 5; done"}) {
		t.Errorf("worker = %v", worker)
	}
}
