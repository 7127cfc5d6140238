package health

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestResolve(t *testing.T) {
	dur := durationpb.New
	defaults := func(c Config) Config {
		c.Interval, c.Timeout, c.Retries, c.StartInterval = DefaultInterval, DefaultTimeout, DefaultRetries, DefaultStartInterval
		return c
	}
	image := &berthv1.HealthCheck{
		Test:          []string{"CMD", "check", "--image"},
		Interval:      dur(7 * time.Second),
		Timeout:       dur(2 * time.Second),
		Retries:       5,
		StartPeriod:   dur(time.Minute),
		StartInterval: dur(time.Second),
	}
	tests := []struct {
		name           string
		service, image *berthv1.HealthCheck
		want           Config
		wantOK         bool
		wantErr        string // part of the error; "" for none
	}{
		{name: "none at all"},
		{name: "both empty", service: &berthv1.HealthCheck{}, image: &berthv1.HealthCheck{}},
		{
			name:    "service only gets defaults",
			service: &berthv1.HealthCheck{Test: []string{"CMD-SHELL", "curl -f localhost"}},
			want:    defaults(Config{Test: []string{"CMD-SHELL", "curl -f localhost"}}),
			wantOK:  true,
		},
		{
			name:   "image only",
			image:  image,
			want:   Config{Test: []string{"CMD", "check", "--image"}, Interval: 7 * time.Second, Timeout: 2 * time.Second, Retries: 5, StartPeriod: time.Minute, StartInterval: time.Second},
			wantOK: true,
		},
		{
			name:    "service fields over the image's",
			service: &berthv1.HealthCheck{Interval: dur(3 * time.Second), Retries: 2},
			image:   image,
			want:    Config{Test: []string{"CMD", "check", "--image"}, Interval: 3 * time.Second, Timeout: 2 * time.Second, Retries: 2, StartPeriod: time.Minute, StartInterval: time.Second},
			wantOK:  true,
		},
		{
			name:    "service test over the image's",
			service: &berthv1.HealthCheck{Test: []string{"CMD", "true"}},
			image:   image,
			want:    Config{Test: []string{"CMD", "true"}, Interval: 7 * time.Second, Timeout: 2 * time.Second, Retries: 5, StartPeriod: time.Minute, StartInterval: time.Second},
			wantOK:  true,
		},
		{name: "service NONE", service: &berthv1.HealthCheck{Test: []string{"NONE"}}, image: image},
		{name: "image NONE", image: &berthv1.HealthCheck{Test: []string{"NONE"}}},
		{name: "disable", service: &berthv1.HealthCheck{Disable: true, Test: []string{"CMD", "true"}}, image: image},
		{
			name:    "http replaces the image's test",
			service: &berthv1.HealthCheck{HttpPort: 8080},
			image:   image,
			want:    Config{HTTPPort: 8080, HTTPPath: "/", Interval: 7 * time.Second, Timeout: 2 * time.Second, Retries: 5, StartPeriod: time.Minute, StartInterval: time.Second},
			wantOK:  true,
		},
		{
			name:    "http with path",
			service: &berthv1.HealthCheck{HttpPort: 80, HttpPath: "/healthz"},
			want:    defaults(Config{HTTPPort: 80, HTTPPath: "/healthz"}),
			wantOK:  true,
		},
		{
			name:    "tcp",
			service: &berthv1.HealthCheck{TcpPort: 5432},
			image:   &berthv1.HealthCheck{Test: []string{"NONE"}},
			want:    defaults(Config{TCPPort: 5432}),
			wantOK:  true,
		},
		{name: "CMD without a command", service: &berthv1.HealthCheck{Test: []string{"CMD"}}, wantErr: "no command after CMD"},
		{name: "CMD-SHELL without a command", image: &berthv1.HealthCheck{Test: []string{"CMD-SHELL", " "}}, wantErr: "no command after CMD-SHELL"},
		{name: "unknown first word", service: &berthv1.HealthCheck{Test: []string{"curl", "-f", "localhost"}}, wantErr: "must start with CMD, CMD-SHELL or NONE"},
		{name: "test and port", service: &berthv1.HealthCheck{Test: []string{"CMD", "true"}, TcpPort: 1}, wantErr: "keep one of them"},
		{name: "http and tcp", service: &berthv1.HealthCheck{HttpPort: 1, TcpPort: 2}, wantErr: "keep one of them"},
		{name: "path without port", service: &berthv1.HealthCheck{HttpPath: "/x"}, wantErr: "needs an http_port"},
		{name: "relative path", service: &berthv1.HealthCheck{HttpPort: 80, HttpPath: "x"}, wantErr: "must start with /"},
		{name: "port out of range", service: &berthv1.HealthCheck{TcpPort: 70000}, wantErr: "not a port"},
		{name: "negative interval", service: &berthv1.HealthCheck{Test: []string{"CMD", "true"}, Interval: dur(-time.Second)}, wantErr: "interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := Resolve(tc.service, tc.image)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Resolve error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if ok != tc.wantOK || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Resolve = %+v, %v; want %+v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestConfigArgv(t *testing.T) {
	tests := []struct {
		test, want []string
	}{
		{[]string{"CMD", "/bin/check", "-v"}, []string{"/bin/check", "-v"}},
		{[]string{"CMD-SHELL", "wget -q localhost || exit 1"}, []string{"/bin/sh", "-c", "wget -q localhost || exit 1"}},
	}
	for _, tc := range tests {
		if got := (Config{Test: tc.test}).argv(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("argv of %q = %q, want %q", tc.test, got, tc.want)
		}
	}
}
