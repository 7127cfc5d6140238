package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	cosignOnce sync.Once
	cosignPath string
	cosignErr  error
)

// cosignBin is the real cosign CLI: $COSIGN_BIN, else bin/cosign as
// `make cosign` builds it from the pinned tool module (quick once the Go
// build cache holds it).
func cosignBin(t testing.TB) string {
	t.Helper()
	cosignOnce.Do(func() {
		if p := os.Getenv("COSIGN_BIN"); p != "" {
			cosignPath = p
			return
		}
		root, err := filepath.Abs("..")
		if err != nil {
			cosignErr = err
			return
		}
		cmd := exec.Command("make", "cosign")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			cosignErr = fmt.Errorf("make cosign: %v\n%s", err, out)
			return
		}
		cosignPath = filepath.Join(root, "bin", "cosign")
	})
	if cosignErr != nil {
		t.Fatal(cosignErr)
	}
	return cosignPath
}

// cosign runs the cosign CLI in dir, offline: no transparency log, no
// Fulcio, the key files of dir.
func cosign(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cosignBin(t), args...)
	cmd.Dir = dir
	// An empty password, as cosign reads it for its key files; HOME keeps
	// its TUF cache inside the test's directory.
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=", "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, ".sigstore"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// berthIn runs the CLI in dir (berth key generate writes its file there),
// with the empty password of the test's cosign key file.
func (c *cluster) berthIn(dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, args := command(c.netns, append([]string{"--config", c.configPath}, args...)...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// refused runs berth args, which must fail, and checks that its output
// has every one of words.
func (c *cluster) refused(what string, words []string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.berth(args...)
	all := out + errOut
	if err == nil {
		c.t.Fatalf("%s: berth %s succeeded:\n%s", what, strings.Join(args, " "), all)
	}
	for _, w := range words {
		if !strings.Contains(all, w) {
			c.t.Fatalf("%s: berth %s: output lacks %q:\n%s", what, strings.Join(args, " "), w, all)
		}
	}
	return all
}

// pushTestImage imports the busybox test image as image on node and
// pushes it to its registry, returning the digest the registry holds.
func (c *cluster) pushTestImage(image, node string) string {
	c.t.Helper()
	c.mustBerth("image", "import", c.writeBusyboxArchive(image), "--node", node)
	c.mustBerth("push", image, "--node", node)
	i := strings.LastIndex(image, ":")
	repo, tag := image[:i], image[i+1:]
	var tags []struct{ Tag, Digest string }
	out := c.mustBerth("image", "tags", repo, "-o", "json")
	if err := json.Unmarshal([]byte(out), &tags); err != nil {
		c.t.Fatalf("image tags -o json: %v\n%s", err, out)
	}
	for _, tg := range tags {
		if tg.Tag == tag && strings.HasPrefix(tg.Digest, "sha256:") {
			return tg.Digest
		}
	}
	c.t.Fatalf("image tags of %s lack %s:\n%s", repo, tag, out)
	return ""
}

const trustCompose = `services:
  web:
    image: %s
    command: ["sleep", "3600"]
`

// TestTrust signs with Berth and verifies with cosign, signs with cosign
// and verifies with Berth, and checks that an image a trust policy covers
// runs only signed: refused at apply with the image, the digest and the
// policy named, and rejected by the node when the policy came after the
// apply. Bad keys and patterns are refused and change nothing.
func TestTrust(t *testing.T) {
	reg := startRegistry(t, "", "")
	serverMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c := newCluster(t, withServerArgs("--metrics-addr", serverMetrics))
	agentMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c.startMachine("alpha", "--metrics-addr", agentMetrics)
	c.mustBerth("cluster", "settings", "--insecure-registry", reg.host)
	dir := c.dir

	signedImage := reg.host + "/team/app:1"
	cosignedImage := reg.host + "/team/cosigned:1"
	unsignedImage := reg.host + "/team/unsigned:1"
	lateImage := reg.host + "/late/app:1"
	signedDigest := c.pushTestImage(signedImage, "alpha")
	cosignedDigest := c.pushTestImage(cosignedImage, "alpha")
	unsignedDigest := c.pushTestImage(unsignedImage, "alpha")
	c.pushTestImage(lateImage, "alpha")

	// Keys: the private half stays in the cluster, the public one is
	// written here in the PEM cosign reads.
	if out, err := c.berthIn(dir, "key", "generate", "release"); err != nil || !strings.Contains(out, "release.pub") {
		t.Fatalf("key generate: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(filepath.Join(dir, "release.pub"))
	if err != nil || !strings.HasPrefix(string(pub), "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("release.pub: %v\n%s", err, pub)
	}
	if out := c.mustBerth("key", "ls", "-o", "json"); !strings.Contains(out, `"release"`) || strings.Contains(out, "PRIVATE") {
		t.Fatalf("key ls:\n%s", out)
	}
	c.refused("a second key of the same name", []string{"release", "exists"}, "key", "generate", "release")

	// Bad input changes nothing.
	if err := os.WriteFile(filepath.Join(dir, "bad.pub"), []byte("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.refused("unknown key name", []string{`"nosuchkey"`, "berth key ls"}, "trust", "set", reg.host+"/team/*", "--key", "nosuchkey")
	c.refused("malformed key file", []string{"bad.pub", "PEM"}, "trust", "set", reg.host+"/team/*", "--key", filepath.Join(dir, "bad.pub"))
	c.refused("pattern without a registry", []string{"team/*", "registry"}, "trust", "set", "team/*", "--key", "release")
	c.refused("pattern with a tag", []string{"tag"}, "trust", "set", reg.host+"/team/app:1", "--key", "release")
	c.refused("signing with an unknown key", []string{`"nosuchkey"`}, "sign", signedImage, "--key", "nosuchkey")
	if out := c.mustBerth("trust", "ls", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("refused policies were stored:\n%s", out)
	}

	// Berth signs; cosign verifies.
	out := c.mustBerth("sign", signedImage, "--key", "release")
	if !strings.Contains(out, signedDigest) {
		t.Fatalf("sign output lacks the digest %s:\n%s", signedDigest, out)
	}
	if out, err := cosign(t, dir, "verify", "--key", "release.pub", "--insecure-ignore-tlog=true", "--allow-insecure-registry", signedImage); err != nil {
		t.Fatalf("cosign verify of Berth's signature: %v\n%s", err, out)
	}
	if out, err := cosign(t, dir, "verify", "--key", "release.pub", "--insecure-ignore-tlog=true", "--allow-insecure-registry", unsignedImage); err == nil {
		t.Fatalf("cosign verify accepted an unsigned image:\n%s", out)
	}

	// push --sign signs the digest the registry took.
	pushedImage := reg.host + "/team/pushed:1"
	c.mustBerth("image", "import", c.writeBusyboxArchive(pushedImage), "--node", "alpha")
	if out := c.mustBerth("push", pushedImage, "--node", "alpha", "--sign", "release"); !strings.Contains(out, "signed "+reg.host+"/team/pushed@sha256:") {
		t.Fatalf("push --sign output:\n%s", out)
	}
	if out, err := cosign(t, dir, "verify", "--key", "release.pub", "--insecure-ignore-tlog=true", "--allow-insecure-registry", pushedImage); err != nil {
		t.Fatalf("cosign verify of what push --sign signed: %v\n%s", err, out)
	}

	// cosign signs; Berth verifies.
	if out, err := cosign(t, dir, "generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	if out, err := cosign(t, dir, "sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", "--yes", reg.host+"/team/cosigned@"+cosignedDigest); err != nil {
		t.Fatalf("cosign sign: %v\n%s", err, out)
	}

	// A cosign key pair kept by the cluster signs as cosign would.
	importedImage := reg.host + "/team/imported:1"
	c.pushTestImage(importedImage, "alpha")
	if out, err := c.berthIn(dir, "key", "import", "ci", "cosign.key"); err != nil {
		t.Fatalf("key import: %v\n%s", err, out)
	}
	c.mustBerth("sign", importedImage, "--key", "ci")
	if out, err := cosign(t, dir, "verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", "--allow-insecure-registry", importedImage); err != nil {
		t.Fatalf("cosign verify of a signature by the imported key: %v\n%s", err, out)
	}
	c.mustBerth("key", "rm", "ci")

	// A policy that covers nothing running is stored, with a warning.
	_, errOut, err := c.berth("trust", "set", reg.host+"/team/*", "--key", "release", "--key", filepath.Join(dir, "cosign.pub"))
	if err != nil || !strings.Contains(errOut, "matches no service") {
		t.Fatalf("trust set: %v\n%s", err, errOut)
	}
	if out := c.mustBerth("trust", "ls"); !strings.Contains(out, reg.host+"/team/*") || !strings.Contains(out, "release") || !strings.Contains(out, "file:cosign.pub") {
		t.Fatalf("trust ls:\n%s", out)
	}

	c.mustBerth("apply", "-f", c.writeFile("signed/compose.yaml", fmt.Sprintf(trustCompose, signedImage)), "-p", "signed")
	c.mustBerth("apply", "-f", c.writeFile("cosigned/compose.yaml", fmt.Sprintf(trustCompose, cosignedImage)), "-p", "cosigned")
	c.waitRunning("signed/web", 1, 2*time.Minute)
	c.waitRunning("cosigned/web", 1, 2*time.Minute)

	// Each version's digest and who signed it.
	if out := c.mustBerth("rollout", "history", "signed/web", "-o", "json"); !strings.Contains(out, signedDigest) || !strings.Contains(out, `"signature": "signed by release"`) {
		t.Fatalf("rollout history of signed/web:\n%s", out)
	}
	if out := c.mustBerth("rollout", "history", "cosigned/web", "-o", "json"); !strings.Contains(out, `"signature": "signed by cosign.pub"`) {
		t.Fatalf("rollout history of cosigned/web:\n%s", out)
	}

	// Unsigned: refused, naming the service, the image, its digest and
	// the policy; nothing is written.
	c.refused("unsigned image", []string{`service "web"`, unsignedImage, unsignedDigest, reg.host + "/team/*", "no signature"},
		"apply", "-f", c.writeFile("unsigned/compose.yaml", fmt.Sprintf(trustCompose, unsignedImage)), "-p", "unsigned")
	if out, _, _ := c.berth("get", "apps"); strings.Contains(out, "unsigned") {
		t.Fatalf("the refused app was stored:\n%s", out)
	}

	// Both the server (at apply) and the node (before create) verified.
	for _, m := range []struct{ who, addr, want string }{
		{"server", serverMetrics, `berth_image_verifications_total{cached="false",result="signed",role="server"} `},
		{"server", serverMetrics, `berth_image_verifications_total{cached="false",result="unsigned",role="server"} `},
		{"node", agentMetrics, `berth_image_verifications_total{cached="false",result="signed",role="node"} `},
	} {
		body, err := httpGet("http://" + m.addr + "/metrics")
		if err != nil || !strings.Contains(body, m.want) {
			t.Fatalf("the %s's metrics lack %q (%v):\n%s", m.who, m.want, err, berthLines(body))
		}
	}

	// A policy set after the apply: scaling is refused by the server,
	// and a replacement task is rejected by the node, in the same words.
	c.mustBerth("apply", "-f", c.writeFile("late/compose.yaml", fmt.Sprintf(`services:
  web:
    image: %s
    command: ["sh", "-c", "sleep 2; exit 3"]
    deploy:
      restart_policy:
        condition: any
        delay: 1s
`, lateImage)), "-p", "late")
	c.waitRunning("late/web", 1, 2*time.Minute)
	c.mustBerth("trust", "set", reg.host+"/late/*", "--key", "release")
	c.refused("scale under a later policy", []string{lateImage, reg.host + "/late/*"}, "scale", "late/web=2")
	eventually(t, 2*time.Minute, func() (bool, string) {
		tasks := c.ps("late", "--all")
		for _, tk := range tasks {
			if tk.State == "rejected" && strings.Contains(tk.Error, "refused by trust policy") && strings.Contains(tk.Error, lateImage) && strings.Contains(tk.Error, reg.host+"/late/*") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no task of late/web was rejected by its node's trust check: %+v", tasks)
	})

	// Keys a policy trusts stay; without the policies they go.
	c.refused("removing a trusted key", []string{"release", "trust polic"}, "key", "rm", "release")
	c.mustBerth("trust", "rm", reg.host+"/late/*")
	c.mustBerth("trust", "rm", reg.host+"/team/*")
	c.mustBerth("key", "rm", "release")
	if out := c.mustBerth("key", "ls", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("key ls after rm:\n%s", out)
	}
}

// TestTrustBuildSign builds with BuildKit, pushes and signs in one
// `berth build --sign`, and checks the signature with cosign and with a
// trust policy that then admits the image.
func TestTrustBuildSign(t *testing.T) {
	reg := startRegistry(t, "", "")
	c := newCluster(t)
	c.startMachine("alpha")
	c.importImage()
	c.mustBerth("cluster", "settings", "--insecure-registry", reg.host)
	if out, err := c.berthIn(c.dir, "key", "generate", "release"); err != nil {
		t.Fatalf("key generate: %v\n%s", err, out)
	}
	ctxDir := filepath.Dir(c.writeFile("app/Dockerfile", "FROM localhost/busybox:latest\nCMD [\"sleep\", \"3600\"]\n"))
	image := reg.host + "/team/built:1"

	c.refused("--sign of a tag without a registry", []string{"names no registry"}, "build", "-t", "built:1", "--sign", "release", ctxDir)
	out, errOut, err := c.berth("build", "-t", image, "--sign", "release", "--node", "alpha", "--progress", "plain", ctxDir)
	if err != nil {
		t.Fatalf("berth build --sign: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	if !strings.Contains(out, "signed "+reg.host+"/team/built@sha256:") {
		t.Fatalf("berth build --sign printed:\n%s", out)
	}
	if out, err := cosign(t, c.dir, "verify", "--key", "release.pub", "--insecure-ignore-tlog=true", "--allow-insecure-registry", image); err != nil {
		t.Fatalf("cosign verify of the built image: %v\n%s", err, out)
	}
	c.mustBerth("trust", "set", reg.host+"/team/*", "--key", "release")
	c.mustBerth("apply", "-f", c.writeFile("built/compose.yaml", fmt.Sprintf(trustCompose, image)), "-p", "built")
	c.waitRunning("built/web", 1, 2*time.Minute)
}
