package compose

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestHealthcheckConversion(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    *berthv1.HealthCheck
		wantErr string
	}{
		{
			name: "command and timings",
			yaml: `
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://localhost/"]
      interval: 2s
      timeout: 1s
      retries: 2
      start_period: 5s
      start_interval: 500ms`,
			want: &berthv1.HealthCheck{
				Test: []string{"CMD", "wget", "-q", "-O-", "http://localhost/"}, Interval: durationpb.New(2 * time.Second),
				Timeout: durationpb.New(time.Second), Retries: 2, StartPeriod: durationpb.New(5 * time.Second), StartInterval: durationpb.New(500 * time.Millisecond),
			},
		},
		{
			name: "string test is CMD-SHELL",
			yaml: `
    healthcheck:
      test: test -f /tmp/ok`,
			want: &berthv1.HealthCheck{Test: []string{"CMD-SHELL", "test -f /tmp/ok"}},
		},
		{
			name: "disabled",
			yaml: `
    healthcheck:
      disable: true`,
			want: &berthv1.HealthCheck{Disable: true},
		},
		{
			name: "http and tcp probes",
			yaml: `
    healthcheck:
      x-berth-http: {port: 8080, path: /healthz}
      x-berth-tcp: {port: 5432}
      interval: 200ms`,
			want: &berthv1.HealthCheck{HttpPort: 8080, HttpPath: "/healthz", TcpPort: 5432, Interval: durationpb.New(200 * time.Millisecond)},
		},
		{
			name: "bad probe port",
			yaml: `
    healthcheck:
      x-berth-tcp: {port: 70000}`,
			wantErr: "x-berth-tcp.port",
		},
		{
			name: "unknown test word",
			yaml: `
    healthcheck:
      test: ["RUN", "true"]`,
			wantErr: "healthcheck.test",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "compose.yaml")
			content := "services:\n  web:\n    image: localhost/busybox:latest" + tt.yaml + "\n"
			if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := Load(context.Background(), Options{Files: []string{file}, Environment: map[string]string{}})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load = %v, want an error about %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range p.Warnings {
				if strings.Contains(w, "healthcheck") {
					t.Errorf("healthcheck is supported, yet warned about: %s", w)
				}
			}
			if got := p.Services[0].Spec.Healthcheck; !proto.Equal(got, tt.want) {
				t.Fatalf("healthcheck = %v, want %v", got, tt.want)
			}
		})
	}
}
