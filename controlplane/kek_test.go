package controlplane

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
)

var quiet = slog.New(slog.DiscardHandler)

func TestOpenKEKNewClusterMakesTheKeyFile(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	file := filepath.Join(t.TempDir(), "data", seal.FileName)
	key, err := openKEK(ctx, st, kekSource{file: file}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(file)
	if err != nil || info.Mode().Perm() != 0o600 || info.Size() != seal.KeySize {
		t.Fatalf("key file: %v, %v; want 32 bytes, mode 0600", info, err)
	}
	check := &berthv1.KeyCheck{}
	if err := st.GetMessage(ctx, store.KeyCheckKey, check); err != nil {
		t.Fatalf("no key check stored: %v", err)
	}
	if err := key.Check(check); err != nil {
		t.Fatalf("the stored key check is not the key's: %v", err)
	}
	raw, _ := os.ReadFile(file)

	// Restarting with the same file opens the same key.
	again, err := openKEK(ctx, st, kekSource{file: file}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest([]byte("x")) != key.Digest([]byte("x")) {
		t.Error("the restarted server has another key")
	}

	other := filepath.Join(t.TempDir(), seal.FileName)
	otherRaw, _ := seal.Generate()
	if err := seal.WriteNewFile(other, otherRaw); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		src  kekSource
		want []string // in the error; none: it opens
	}{
		{name: "the unlock key of the file", src: kekSource{file: "/nonexistent/x", unlock: seal.Text(raw)}},
		{name: "a copy of the file", src: kekSource{file: copyFile(t, file)}},
		{name: "a server without the key file", src: kekSource{file: filepath.Join(t.TempDir(), seal.FileName)},
			want: []string{"does not exist", "copy the key file", "--unlock-key"}},
		{name: "another cluster's key file", src: kekSource{file: other},
			want: []string{other, "is not this cluster's", "copy the key file", "--unlock-key"}},
		{name: "another unlock key", src: kekSource{unlock: seal.Text(otherRaw)},
			want: []string{"unlock key given", "not this cluster's"}},
		{name: "an unlock key that is no key", src: kekSource{unlock: "nope"},
			want: []string{"--unlock-key", "base64 of 32 bytes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openKEK(ctx, st, tc.src, quiet)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("the server started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func copyFile(t *testing.T, from string) string {
	t.Helper()
	raw, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "copy")
	if err := seal.WriteNewFile(to, raw); err != nil {
		t.Fatal(err)
	}
	return to
}

func TestOpenKEKNewClusterWithUnlockKeyWritesNoFile(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	dir := t.TempDir()
	raw, _ := seal.Generate()
	src := kekSource{file: filepath.Join(dir, seal.FileName), unlock: seal.Text(raw)}
	if _, err := openKEK(ctx, st, src, quiet); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the data dir holds %v; the unlock key must stay off the disk", entries)
	}
	// The cluster's key is now the unlock key: a key file made later is
	// refused.
	if _, err := openKEK(ctx, st, kekSource{file: src.file}, quiet); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("a server without the key started: %v", err)
	}
}

func TestOpenKEKServersRacingOnANewCluster(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	const servers = 3
	files := make([]string, servers)
	errs := make([]error, servers)
	var wg sync.WaitGroup
	for i := range servers {
		files[i] = filepath.Join(t.TempDir(), seal.FileName)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = openKEK(ctx, st, kekSource{file: files[i]}, quiet)
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		_, statErr := os.Stat(files[i])
		switch {
		case err == nil:
			won++
			if statErr != nil {
				t.Errorf("server %d won without a key file: %v", i, statErr)
			}
		case statErr == nil:
			t.Errorf("server %d lost (%v) but kept a key file that is not the cluster's", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d servers made the cluster's key, want 1: %v", won, errors.Join(errs...))
	}
}
