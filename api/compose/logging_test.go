package compose

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestLoadLogging(t *testing.T) {
	dir := writeProject(t, map[string]string{"compose.yaml": `services:
  web:
    image: busybox
    logging:
      driver: json-file
      options: {max-size: 10m, max-file: "5"}
  small:
    image: busybox
    logging:
      options: {max-size: 1k}
  plain:
    image: busybox
`})
	p, err := loadDir(t, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*berthv1.LogConfig{
		"web":   {Driver: "json-file", MaxSize: 10_000_000, MaxFile: 5},
		"small": {MaxSize: 1000},
		"plain": nil,
	}
	for _, s := range p.Services {
		if got := s.GetSpec().GetLogging(); !proto.Equal(got, want[s.Name]) {
			t.Errorf("service %s: logging %v, want %v", s.Name, got, want[s.Name])
		}
	}
}

func TestLoadLoggingErrors(t *testing.T) {
	tests := []struct {
		name, logging, want string
	}{
		{"other driver", "driver: syslog", `compose.yaml:5: service "web": logging.driver: log driver "syslog" is not supported`},
		{"bad size", "options: {max-size: lots}", `service "web": logging.options.max-size: max-size "lots" is not a size`},
		{"tiny size", "options: {max-size: 10b}", `service "web": logging.options.max-size: max-size "10b" is under the smallest log file`},
		{"bad count", "options: {max-file: \"0\"}", `service "web": logging.options.max-file: max-file "0" must be from 1 to 100`},
		{"unknown option", "options: {compress: \"true\"}", `service "web": logging.options.compress: option "compress" is not honoured`},
	}
	for _, tt := range tests {
		dir := writeProject(t, map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    logging:\n      " + tt.logging + "\n"})
		_, err := loadDir(t, dir, Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want it to contain %q", tt.name, err, tt.want)
		}
	}
}
