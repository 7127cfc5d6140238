package compose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/api/validation"
)

// FuzzLoadBytes loads and converts arbitrary bytes as a pasted Compose
// file: it never panics, refuses with validation errors that do not show
// the server's temporary directory, and what it accepts is a named app
// whose services have names and specs.
func FuzzLoadBytes(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*", "*.yaml"))
	for _, path := range seeds {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"services:\n  web:\n    image: busybox\n",
		"name: shop\nservices:\n  web:\n    image: busybox\n    ports: [\"8080:80\"]\n    deploy: {replicas: 2}\n",
		"services:\n  web:\n    image: busybox\n    env_file: /etc/passwd\n",
		"x-a: &a {env_file: /etc/passwd}\nservices:\n  web:\n    <<: *a\n    image: busybox\n",
		"include: [/etc/passwd]\n",
		"services:\n  web:\n    image: ${HOME}\n    volumes: [\"~/x:/x\", \"./y:/y\", \"data:/d\"]\nvolumes: {data: {}}\n",
		"services:\n  web:\n    build: {dockerfile_inline: FROM busybox}\n    secrets: [s]\nsecrets:\n  s: {environment: HOME}\n",
		"services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n",
		"services: [",
		"a: &a [*a]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		// Go's fuzzing has no limit per input: a load that never ends
		// would only stall it. Such a load is a bug (a server handler
		// stuck for ever), so it crashes the run with its input.
		hang := time.AfterFunc(30*time.Second, func() { panic(fmt.Sprintf("LoadBytes(%q) has not returned in 30s", content)) })
		defer hang.Stop()
		p, err := LoadBytes(context.Background(), content, Options{})
		if err != nil {
			var verrs validation.Errors
			if !errors.As(err, &verrs) && !errors.Is(err, context.Canceled) {
				t.Fatalf("LoadBytes error %v (%T) is not validation errors", err, err)
			}
			if strings.Contains(err.Error(), "berth-compose-") {
				t.Fatalf("LoadBytes error shows the server's temporary directory: %v", err)
			}
			return
		}
		if p.App == "" {
			t.Fatalf("LoadBytes accepted a project without a name")
		}
		for _, s := range p.Services {
			if s.Name == "" || s.Spec == nil {
				t.Fatalf("LoadBytes accepted a service without a name or spec: %v", s)
			}
		}
	})
}
