package compose

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestLoadConvertsBuild(t *testing.T) {
	tests := []struct {
		name string
		// compose is compose.yaml; the project also holds web/Dockerfile
		// and Dockerfile.
		compose string
		env     map[string]string
		// wantImage and wantBuild are service web's.
		wantImage string
		wantBuild *berthv1.BuildSpec
	}{
		{
			name:      "short syntax names the image after the app",
			compose:   "name: shop\nservices:\n  web:\n    build: ./web\n",
			wantImage: "shop-web:latest",
			wantBuild: &berthv1.BuildSpec{Context: "web", Dockerfile: "Dockerfile"},
		},
		{
			name:      "a git URL context is kept for the node's BuildKit",
			compose:   "name: shop\nservices:\n  web:\n    build:\n      context: https://git.example.com/shop.git#main:web\n      dockerfile: docker/Dockerfile\n",
			wantImage: "shop-web:latest",
			wantBuild: &berthv1.BuildSpec{Context: "https://git.example.com/shop.git#main:web", Dockerfile: "docker/Dockerfile"},
		},
		{
			name: "every key, image given",
			compose: `name: shop
services:
  web:
    image: localhost/web:2
    build:
      context: .
      dockerfile: web/Dockerfile
      target: final
      args:
        VERSION: "1.2"
        EMPTY: ""
        FROM_ENV:
        UNSET:
`,
			env:       map[string]string{"FROM_ENV": "env-value"},
			wantImage: "localhost/web:2",
			wantBuild: &berthv1.BuildSpec{Context: ".", Dockerfile: "web/Dockerfile", Target: "final",
				Args: map[string]string{"VERSION": "1.2", "EMPTY": "", "FROM_ENV": "env-value"}},
		},
		{
			name:      "list of args, interpolated",
			compose:   "name: shop\nservices:\n  web:\n    build:\n      context: web\n      args: [\"A=${X}\", B=2]\n",
			env:       map[string]string{"X": "x1"},
			wantImage: "shop-web:latest",
			wantBuild: &berthv1.BuildSpec{Context: "web", Dockerfile: "Dockerfile", Args: map[string]string{"A": "x1", "B": "2"}},
		},
		{
			name:      "no build",
			compose:   "name: shop\nservices:\n  web:\n    image: busybox\n",
			wantImage: "busybox",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, map[string]string{
				"compose.yaml":   tt.compose,
				"web/Dockerfile": "FROM scratch\n",
				"Dockerfile":     "FROM scratch\n",
			})
			p, err := loadDir(t, dir, Options{Environment: tt.env})
			if err != nil {
				t.Fatalf("Load() error:\n%v", err)
			}
			if len(p.Warnings) > 0 {
				t.Errorf("warnings: %v", p.Warnings)
			}
			if p.Dir != dir {
				t.Errorf("Dir = %q, want %q", p.Dir, dir)
			}
			spec := p.Services[0].Spec
			if spec.Image != tt.wantImage {
				t.Errorf("image = %q, want %q", spec.Image, tt.wantImage)
			}
			if !proto.Equal(spec.Build, tt.wantBuild) {
				t.Errorf("build = %v, want %v", spec.Build, tt.wantBuild)
			}
		})
	}
}

func TestLoadBuildErrors(t *testing.T) {
	tests := []struct {
		name    string
		compose string
		want    string
	}{
		{"missing context", "services:\n  web:\n    build: ./nope\n", `compose.yaml:3: service "web": build.context: `},
		{"web page context", "services:\n  web:\n    build: https://example.invalid/repo\n", "is neither a local directory nor a git URL"},
		{"git context with an inline Dockerfile", "services:\n  web:\n    build:\n      context: https://example.invalid/repo.git#main\n      dockerfile_inline: FROM scratch\n", "build.dockerfile_inline: a git build context reads its Dockerfile from the repository"},
		{"Dockerfile given twice", "services:\n  web:\n    build:\n      context: .\n      dockerfile: Dockerfile\n      dockerfile_inline: FROM scratch\n", "build.dockerfile_inline: the Dockerfile is given twice; set only one of dockerfile and dockerfile_inline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, map[string]string{"compose.yaml": tt.compose})
			_, err := loadDir(t, dir, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
