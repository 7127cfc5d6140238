package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// dockerConfigDir is where docker keeps config.json: $DOCKER_CONFIG, else
// ~/.docker. (docker/cli's config.Dir reads the variable once per
// process; this reads it each time.)
func dockerConfigDir() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".docker"
	}
	return filepath.Join(home, ".docker")
}

// dockerRegistry is how docker's config names a registry turned into what
// Login takes: the host[:port], and "" for Docker Hub, which the config
// keys as https://index.docker.io/v1/.
func dockerRegistry(key string) string {
	host := key
	if _, rest, ok := strings.Cut(host, "://"); ok {
		host = rest
	}
	host, _, _ = strings.Cut(host, "/")
	switch host {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return ""
	}
	return host
}

// dockerCredential is one registry's credential read from docker's config.
type dockerCredential struct {
	key      string // as config.json names it
	registry string // as Login takes it
	auth     types.AuthConfig
	source   string
}

// dockerCredentials reads the credentials of docker's config in dir, of
// the registries named in want (all when want is empty). Each comes from
// config.json's auths, its credHelpers or its credsStore, whose helpers
// (docker-credential-NAME on $PATH) docker/cli's config package runs.
func dockerCredentials(dir string, want []string) ([]dockerCredential, error) {
	path := filepath.Join(dir, config.ConfigFileName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("login --from-docker: no docker config at %s: run `docker login` first, or point $DOCKER_CONFIG at the folder holding config.json", path)
	}
	cf, err := config.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("login --from-docker: %w", err)
	}
	keys := map[string]bool{}
	for k := range cf.GetAuthConfigs() {
		keys[k] = true
	}
	for k := range cf.CredentialHelpers {
		keys[k] = true
	}
	if cf.CredentialsStore != "" {
		all, err := cf.GetCredentialsStore("").GetAll()
		if err != nil {
			return nil, fmt.Errorf("login --from-docker: credential store %q (docker-credential-%s): %w", cf.CredentialsStore, cf.CredentialsStore, err)
		}
		for k := range all {
			keys[k] = true
		}
	}
	byRegistry := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if _, dup := byRegistry[dockerRegistry(k)]; !dup {
			byRegistry[dockerRegistry(k)] = k
		}
	}
	var names []string
	if len(want) == 0 {
		names = slices.Sorted(maps.Keys(byRegistry))
	} else {
		for _, w := range want {
			r := dockerRegistry(w)
			if _, ok := byRegistry[r]; !ok {
				return nil, fmt.Errorf("login --from-docker: %s has no credential in %s; `docker login %s` stores one", registryName(r), path, w)
			}
			names = append(names, r)
		}
	}
	out := make([]dockerCredential, 0, len(names))
	for _, r := range names {
		key := byRegistry[r]
		ac, err := cf.GetAuthConfig(key)
		if err != nil {
			return nil, fmt.Errorf("login --from-docker: %s: %w", registryName(r), err)
		}
		out = append(out, dockerCredential{key: key, registry: r, auth: ac, source: credentialSource(cf, key)})
	}
	return out, nil
}

// credentialSource says where docker keeps the credential of key.
func credentialSource(cf *configfile.ConfigFile, key string) string {
	if h := cf.CredentialHelpers[key]; h != "" {
		return "credential helper " + h
	}
	if cf.CredentialsStore != "" {
		return "credential store " + cf.CredentialsStore
	}
	return "config.json"
}

// loginFromDocker stores in the cluster each credential docker has (of
// the registries named in args, or all), as "berth login" would, and says
// which it imported; it never prints a secret.
func (o *rootOptions) loginFromDocker(cmd *cobra.Command, args []string) error {
	creds, err := dockerCredentials(dockerConfigDir(), args)
	if err != nil {
		return err
	}
	if len(creds) == 0 {
		return fmt.Errorf("login --from-docker: the docker config in %s holds no registry credential", dockerConfigDir())
	}
	out, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
		failed := 0
		for _, cr := range creds {
			shown := registryName(cr.registry)
			if err := c.importDockerCredential(ctx, cr, stderr); err != nil {
				fmt.Fprintf(stderr, "berth: %s: %s\n", shown, userMessage(err))
				failed++
				continue
			}
			fmt.Fprintf(out, "Login stored for %s as %s (from docker's %s)\n", shown, cr.auth.Username, cr.source)
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d registries were not imported", failed, len(creds))
		}
		return nil
	})
}

// importDockerCredential stores one credential with Login.
func (c *cluster) importDockerCredential(ctx context.Context, cr dockerCredential, stderr io.Writer) error {
	a := cr.auth
	if a.Username == "" || a.Password == "" {
		if a.IdentityToken != "" || a.RegistryToken != "" {
			return fmt.Errorf("docker holds a token from a browser or single sign-on login, not a password; store one with `berth login %s -u USER --password-stdin`", registryName(cr.registry))
		}
		return fmt.Errorf("docker's entry %q has no username and password; run `docker login %s` again", cr.key, registryName(cr.registry))
	}
	var header metadata.MD
	if _, err := c.Login(ctx, &berthv1.LoginRequest{Registry: cr.registry, Username: a.Username, Password: a.Password}, grpc.Header(&header)); err != nil {
		return err
	}
	printWarnings(stderr, header)
	return nil
}
