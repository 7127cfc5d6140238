package registry

import (
	"errors"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNormalize(t *testing.T) {
	cases := []struct {
		in, want string
		bad      bool
	}{
		{in: "", want: "docker.io"},
		{in: "docker.io", want: "docker.io"},
		{in: "index.docker.io", want: "docker.io"},
		{in: "https://index.docker.io/v1/", want: "docker.io"},
		{in: "Registry.Example.COM", want: "registry.example.com"},
		{in: "registry.example.com:5000", want: "registry.example.com:5000"},
		{in: "http://127.0.0.1:5000/", want: "127.0.0.1:5000"},
		{in: "localhost:5000", want: "localhost:5000"},
		{in: "[::1]:5000", want: "[::1]:5000"},
		{in: "registry.example.com:0", bad: true},
		{in: "registry.example.com:http", bad: true},
		{in: "reg istry", bad: true},
		{in: "-bad-.example.com", bad: true},
		{in: "a..b", bad: true},
		{in: "host:1:2", bad: true},
	}
	for _, c := range cases {
		got, err := Normalize(c.in)
		if c.bad {
			if !errors.Is(err, ErrInvalidRegistry) {
				t.Errorf("Normalize(%q) = %q, %v; want ErrInvalidRegistry", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestHostOf(t *testing.T) {
	cases := []struct{ image, host string }{
		{"busybox", "docker.io"},
		{"library/busybox:1", "docker.io"},
		{"127.0.0.1:5000/busybox:1", "127.0.0.1:5000"},
		{"localhost/busybox", "localhost"},
		{"Registry.Example.com/team/app:2", "registry.example.com"},
	}
	for _, c := range cases {
		host, err := HostOf(c.image)
		if err != nil || host != c.host {
			t.Errorf("HostOf(%q) = %q, %v; want %q", c.image, host, err, c.host)
		}
	}
	if _, err := HostOf("team/UPPER:1"); err == nil {
		t.Errorf("HostOf accepted an invalid reference")
	}
}
