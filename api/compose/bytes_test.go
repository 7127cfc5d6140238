package compose

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/berthproject/berth/api/validation"
)

func TestLoadBytes(t *testing.T) {
	tests := []struct {
		name    string
		content string
		opts    Options
		wantApp string
		wantErr string
	}{
		{name: "name in the file", content: "name: shop\nservices:\n  web:\n    image: busybox\n", wantApp: "shop"},
		{name: "no name", content: "services:\n  web:\n    image: busybox\n", wantApp: "app"},
		{name: "project option", content: "services:\n  web:\n    image: busybox\n", opts: Options{Project: "blog"}, wantApp: "blog"},
		{name: "server environment unused", content: "services:\n  web:\n    image: ${HOME:-busybox}\n", wantApp: "app"},
		{name: "invalid", content: "services:\n  web:\n    ports: [\"x\"]\n", wantErr: BytesFile},
		{name: "external secret", content: "services:\n  web:\n    image: busybox\n    secrets: [pw]\nsecrets:\n  pw: {external: true}\n", wantApp: "app"},
		{name: "no secret from a file of the server", content: "services:\n  web:\n    image: busybox\nsecrets:\n  pw: {file: /etc/hostname}\n",
			wantErr: `compose.yaml:5: secrets.pw.file: secret "pw": a file cannot be read from here`},
		{name: "no config from a file of the server", content: "services:\n  web:\n    image: busybox\nconfigs:\n  c: {file: /etc/hostname}\n",
			wantErr: `configs.c.file: config "c": a file cannot be read from here`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := LoadBytes(context.Background(), []byte(tt.content), tt.opts)
			if tt.wantErr != "" {
				var verrs validation.Errors
				if !errors.As(err, &verrs) || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "berth-compose-") {
					t.Fatalf("LoadBytes error = %v; want validation errors naming %s and not the temporary path", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadBytes: %v", err)
			}
			if p.App != tt.wantApp || len(p.Services) != 1 || p.Services[0].Name != "web" || p.Services[0].Spec.Image != "busybox" {
				t.Fatalf("LoadBytes = app %q services %v; want app %q with service web of image busybox", p.App, p.Services, tt.wantApp)
			}
		})
	}
}
