package validation

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in      string
		want    *berthv1.Platform
		wantErr string // substring; "" means valid
	}{
		{in: "linux/amd64", want: &berthv1.Platform{Os: "linux", Architecture: "amd64"}},
		{in: "linux/arm64/v8", want: &berthv1.Platform{Os: "linux", Architecture: "arm64/v8"}},
		{in: "Linux/ARM/v7", want: &berthv1.Platform{Os: "linux", Architecture: "arm/v7"}},
		{in: "linux/aarch64/v8", want: &berthv1.Platform{Os: "linux", Architecture: "arm64/v8"}},
		{in: "Linux/X86_64", want: &berthv1.Platform{Os: "linux", Architecture: "amd64"}},
		{in: "linux/aarch64", want: &berthv1.Platform{Os: "linux", Architecture: "arm64"}},
		{in: " windows/386 ", want: &berthv1.Platform{Os: "windows", Architecture: "386"}},
		{in: "linux", wantErr: `"linux" is not os/arch[/variant]; write it like linux/amd64 or linux/arm/v7`},
		{in: "linux/", wantErr: "is not os/arch[/variant]"},
		{in: "/amd64", wantErr: "is not os/arch[/variant]"},
		{in: "linux/arm64/v8/x", wantErr: "is not os/arch[/variant]"},
		{in: "linx/amd64", wantErr: `"linx/amd64": unknown operating system "linx"; use one of aix, android, darwin`},
		{in: "linux/amd46", wantErr: `"linux/amd46": unknown architecture "amd46"; use one of 386, amd64`},
		{in: "linux/arm/v-7", wantErr: `variant "v-7" is not a name like v7 or v8`},
	}
	for _, tt := range tests {
		got, err := ParsePlatform(tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || !proto.Equal(got, tt.want)):
			t.Errorf("ParsePlatform(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParsePlatform(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
		}
	}
}

func TestNormalizePlatforms(t *testing.T) {
	spec := &berthv1.ServiceSpec{Placement: &berthv1.Placement{Platforms: []*berthv1.Platform{
		{Os: "Linux", Architecture: "x86_64"}, {Architecture: "AARCH64/V8"}, nil,
	}}}
	Normalize(spec)
	want := []*berthv1.Platform{{Os: "linux", Architecture: "amd64"}, {Architecture: "arm64/v8"}, nil}
	for i, p := range spec.GetPlacement().GetPlatforms() {
		if !proto.Equal(p, want[i]) {
			t.Errorf("platform %d = %v, want %v", i, p, want[i])
		}
	}
}

func TestPlatformConstraints(t *testing.T) {
	spec := &berthv1.ServiceSpec{Image: "busybox", Placement: &berthv1.Placement{Constraints: []string{
		"node.platform.arch == x86_64", "node.platform.os!=Linux", "node.role==manager", "node.labels.arch==x86_64",
		"node.platform.os==linx", "node.platform.arch==amd46",
	}}}
	checkProblems(t, ValidateSpec("web", spec), []string{
		`deploy.placement.constraints[4]: constraint "node.platform.os==linx": unknown operating system "linx"`,
		`deploy.placement.constraints[5]: constraint "node.platform.arch==amd46": unknown architecture "amd46"`,
	})
	Normalize(spec)
	want := []string{
		"node.platform.arch==amd64", "node.platform.os!=linux", "node.role==manager", "node.labels.arch==x86_64",
		"node.platform.os==linx", "node.platform.arch==amd46",
	}
	if got := spec.GetPlacement().GetConstraints(); !slices.Equal(got, want) {
		t.Errorf("constraints after Normalize = %q, want %q", got, want)
	}
}
