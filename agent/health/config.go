// Package health tells whether a task's container is healthy, with
// Docker's HEALTHCHECK semantics: Resolve turns the service's and the
// image's check into one Config, and Monitor probes the container and
// reports each change of its health.
package health

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Docker's defaults for the fields a check leaves unset.
const (
	DefaultInterval      = 30 * time.Second
	DefaultTimeout       = 30 * time.Second
	DefaultRetries       = 3
	DefaultStartPeriod   = 0
	DefaultStartInterval = 5 * time.Second
)

// The first words of a health check test.
const (
	testNone     = "NONE"
	testCmd      = "CMD"
	testCmdShell = "CMD-SHELL"
)

// Config is a resolved health check: Docker's defaults filled in (interval
// 30s, timeout 30s, retries 3, start period 0, start interval 5s). Exactly
// one of Test, HTTPPort and TCPPort says what to probe.
type Config struct {
	// Test is ["CMD", arg...] or ["CMD-SHELL", command].
	Test                                          []string
	Interval, Timeout, StartPeriod, StartInterval time.Duration
	Retries                                       int
	// HTTPPort with HTTPPath ("/" when unset) probes an HTTP GET.
	HTTPPort uint32
	HTTPPath string
	// TCPPort probes a TCP connect.
	TCPPort uint32
}

// Resolve merges the service's check over the image's, field by field as
// Docker does (either may be nil). ok is false when there is no check at
// all: both nil or empty, a test of ["NONE"], or the service's disable.
// err describes a malformed check.
func Resolve(service, image *berthv1.HealthCheck) (cfg Config, ok bool, err error) {
	if service.GetDisable() {
		return Config{}, false, nil
	}
	probesNetwork := service.GetHttpPort() != 0 || service.GetTcpPort() != 0
	if err := validateNetwork(service); err != nil {
		return Config{}, false, err
	}

	test := service.GetTest()
	if len(test) == 0 && !probesNetwork {
		test = image.GetTest()
	}
	if len(test) > 0 && test[0] == testNone {
		return Config{}, false, nil
	}
	if len(test) > 0 && probesNetwork {
		return Config{}, false, fmt.Errorf("health check: test %q and an HTTP or TCP port are both set; keep one of them", test)
	}
	if len(test) == 0 && !probesNetwork {
		return Config{}, false, nil
	}
	if err := validateTest(test); err != nil {
		return Config{}, false, err
	}

	cfg = Config{
		Test:     append([]string(nil), test...),
		HTTPPort: service.GetHttpPort(),
		HTTPPath: service.GetHttpPath(),
		TCPPort:  service.GetTcpPort(),
		Retries:  int(service.GetRetries()),
	}
	if cfg.HTTPPort != 0 && cfg.HTTPPath == "" {
		cfg.HTTPPath = "/"
	}
	if cfg.Retries == 0 {
		cfg.Retries = int(image.GetRetries())
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	}
	durations := []struct {
		name         string
		dst          *time.Duration
		service, img *durationpb.Duration
		def          time.Duration
	}{
		{"interval", &cfg.Interval, service.GetInterval(), image.GetInterval(), DefaultInterval},
		{"timeout", &cfg.Timeout, service.GetTimeout(), image.GetTimeout(), DefaultTimeout},
		{"start_period", &cfg.StartPeriod, service.GetStartPeriod(), image.GetStartPeriod(), DefaultStartPeriod},
		{"start_interval", &cfg.StartInterval, service.GetStartInterval(), image.GetStartInterval(), DefaultStartInterval},
	}
	for _, d := range durations {
		v, err := mergeDuration(d.service, d.img, d.def)
		if err != nil {
			return Config{}, false, fmt.Errorf("health check: %s: %w", d.name, err)
		}
		*d.dst = v
	}
	return cfg, true, nil
}

// validateNetwork checks the service's HTTP and TCP probe fields.
func validateNetwork(service *berthv1.HealthCheck) error {
	switch {
	case service.GetHttpPort() != 0 && service.GetTcpPort() != 0:
		return errors.New("health check: http_port and tcp_port are both set; keep one of them")
	case service.GetHttpPort() > 65535:
		return fmt.Errorf("health check: http_port %d is not a port (1-65535)", service.GetHttpPort())
	case service.GetTcpPort() > 65535:
		return fmt.Errorf("health check: tcp_port %d is not a port (1-65535)", service.GetTcpPort())
	case service.GetHttpPath() != "" && service.GetHttpPort() == 0:
		return fmt.Errorf("health check: http_path %q needs an http_port", service.GetHttpPath())
	case service.GetHttpPath() != "" && !strings.HasPrefix(service.GetHttpPath(), "/"):
		return fmt.Errorf("health check: http_path %q must start with /", service.GetHttpPath())
	}
	return nil
}

// validateTest checks a test other than NONE, which callers handle.
func validateTest(test []string) error {
	if len(test) == 0 {
		return nil
	}
	switch test[0] {
	case testCmd:
		if len(test) < 2 || test[1] == "" {
			return fmt.Errorf("health check: test %q has no command after CMD; write [\"CMD\", \"program\", \"arg\"...]", test)
		}
	case testCmdShell:
		if len(test) < 2 || strings.TrimSpace(strings.Join(test[1:], " ")) == "" {
			return fmt.Errorf("health check: test %q has no command after CMD-SHELL; write [\"CMD-SHELL\", \"command\"]", test)
		}
	default:
		return fmt.Errorf("health check: test %q must start with CMD, CMD-SHELL or NONE", test)
	}
	return nil
}

// mergeDuration returns the service's duration if set, else the image's,
// else def; negative durations are errors.
func mergeDuration(service, image *durationpb.Duration, def time.Duration) (time.Duration, error) {
	for _, d := range []*durationpb.Duration{service, image} {
		if d == nil {
			continue
		}
		if err := d.CheckValid(); err != nil {
			return 0, err
		}
		v := d.AsDuration()
		if v < 0 {
			return 0, fmt.Errorf("%v is negative", v)
		}
		if v > 0 {
			return v, nil
		}
	}
	return def, nil
}

// argv is the command a Test runs in the container: CMD's arguments, or
// CMD-SHELL's command under /bin/sh -c.
func (c Config) argv() []string {
	if len(c.Test) < 2 {
		return nil
	}
	if c.Test[0] == testCmdShell {
		return []string{"/bin/sh", "-c", strings.Join(c.Test[1:], " ")}
	}
	return append([]string(nil), c.Test[1:]...)
}
