package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newKeyCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "key",
		Aliases: []string{"keys"},
		Short:   "Manage image signing keys the cluster keeps",
		Long: `Manage the image signing keys of a namespace. A key is an ECDSA P-256 pair,
the kind cosign makes. The cluster keeps its private half sealed with the
key-encryption key: it signs on the control plane and never leaves it. Its
public half is written to NAME.pub, the file ` + "`cosign verify --key`" + ` reads.`,
		Example: `  berth key generate release        # writes release.pub
  COSIGN_PASSWORD=... berth key import ci cosign.key
  berth key ls
  berth key rm release`,
		GroupID: groupCluster,
	}
	cmd.AddCommand(newKeyGenerateCommand(o), newKeyImportCommand(o), newKeyListCommand(o), newKeyRemoveCommand(o))
	requireSubcommand(cmd)
	return cmd
}

func newKeyGenerateCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "generate NAME",
		Short: "Make a key pair; the public key is written to NAME.pub here",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			pubFile := name + ".pub"
			// Checked before the key is made, so a refusal changes nothing.
			if _, err := os.Lstat(pubFile); err == nil {
				return fmt.Errorf("key generate: %s exists in this directory; move it away or generate the key from another directory", pubFile)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("key generate: %w", err)
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.GenerateKey(ctx, &berthv1.GenerateKeyRequest{Namespace: c.namespace, Name: name})
				if err != nil {
					return fmt.Errorf("key generate %s: %w", name, err)
				}
				if err := os.WriteFile(pubFile, []byte(resp.GetKey().GetPublicKeyPem()), 0o644); err != nil {
					return fmt.Errorf("key %s was made, but writing its public key: %w; `berth key ls -o json` shows it", name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "key %s generated in namespace %s; public key written to %s\n", name, resp.GetKey().GetNamespace(), pubFile)
				return nil
			})
		},
	}
}

// cosignPasswordEnv holds the password of a cosign key file, as cosign
// itself reads it.
const cosignPasswordEnv = "COSIGN_PASSWORD"

func newKeyImportCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "import NAME FILE",
		Short: "Keep a cosign key pair (cosign.key) as a cluster key",
		Long: `Read FILE, a private key as ` + "`cosign generate-key-pair`" + ` writes it (encrypted with
the password in $COSIGN_PASSWORD, empty for none, as cosign reads it), and
keep it in the cluster as key NAME: sealed like a generated key, usable with
` + "`berth sign --key NAME`" + ` and in trust policies. The key is decrypted here and
sent over the cluster's TLS connection; it is never stored unsealed.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, file := args[0], args[1]
			der, err := readCosignKey(file)
			if err != nil {
				return fmt.Errorf("key import %s: %w", name, err)
			}
			defer clear(der)
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.ImportKey(ctx, &berthv1.ImportKeyRequest{Namespace: c.namespace, Name: name, PrivateKey: der})
				if err != nil {
					return fmt.Errorf("key import %s: %w", name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "key %s imported in namespace %s from %s\n", name, resp.GetKey().GetNamespace(), file)
				return nil
			})
		},
	}
}

// readCosignKey decrypts a cosign private key file into PKCS#8 DER.
func readCosignKey(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	password, ok := os.LookupEnv(cosignPasswordEnv)
	if !ok {
		return nil, fmt.Errorf("set $%s to the password of %s (empty for a key without one), as cosign reads it", cosignPasswordEnv, file)
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(data, cryptoutils.StaticPasswordFunc([]byte(password)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w (is it a cosign.key, and $%s its password?)", file, err, cosignPasswordEnv)
	}
	return cryptoutils.MarshalPrivateKeyToDER(priv)
}

type keyRow struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	PublicKey string `json:"public_key"`
	Created   string `json:"created"`
}

func newKeyListCommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List signing keys (public halves only)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.ListKeys(ctx, &berthv1.ListKeysRequest{Namespace: c.namespace, AllNamespaces: c.allNamespaces})
				if err != nil {
					return fmt.Errorf("key ls: %w", err)
				}
				rows := []keyRow{}
				for _, k := range resp.GetKeys() {
					rows = append(rows, keyRow{Namespace: k.GetNamespace(), Name: k.GetName(), PublicKey: k.GetPublicKeyPem(), Created: stamp(k.GetMeta().GetCreatedAt())})
				}
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
					fmt.Fprintln(w, "NAMESPACE\tNAME\tCREATED")
					for _, r := range rows {
						fmt.Fprintf(w, "%s\t%s\t%s\n", r.Namespace, r.Name, r.Created)
					}
				})
			})
		},
	}
	out = addOutputFlag(cmd)
	addAllNamespacesFlag(cmd, o)
	return cmd
}

func newKeyRemoveCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove"},
		Short:   "Remove a signing key that no trust policy trusts",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				if _, err := c.RemoveKey(ctx, &berthv1.RemoveKeyRequest{Namespace: c.namespace, Name: args[0]}); err != nil {
					return fmt.Errorf("key rm %s: %w", args[0], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "key %s removed\n", args[0])
				return nil
			})
		},
	}
}

func newSignCommand(o *rootOptions) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "sign IMAGE --key NAME",
		Short: "Sign an image in its registry with a cluster key or a cosign key file, in cosign's format",
		Long: `Resolve IMAGE to its manifest digest in its registry (with the credential the
cluster holds for it), sign the digest with the cluster key NAME, and store
the signature beside the image in cosign's format (the sha256-<hex>.sig
tag), so that ` + "`cosign verify --key NAME.pub --insecure-ignore-tlog IMAGE`" + ` and Berth's
trust policies accept it. The private key never leaves the control plane.

--key FILE signs with a cosign key file instead (cosign.key, decrypted here
with the password in $COSIGN_PASSWORD): the key is sent for this signature
over the cluster's TLS connection and not kept.`,
		Example: `  berth sign 127.0.0.1:5000/team/app:1.0 --key release
  COSIGN_PASSWORD=... berth sign 127.0.0.1:5000/team/app:1.0 --key ./cosign.key`,
		GroupID: groupApps,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return usageErrorf("%s", "sign: --key is required: the name of a cluster key (`berth key ls`) or a cosign key file")
			}
			sk, err := readSigningKey(key)
			if err != nil {
				return fmt.Errorf("sign %s: %w", args[0], err)
			}
			defer sk.forget()
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.SignImage(ctx, sk.request(c.namespace, args[0]))
				if err != nil {
					return fmt.Errorf("sign %s: %w", args[0], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "signed %s@%s with key %s; signature stored at %s\n", resp.GetImage(), resp.GetDigest(), key, resp.GetSignature())
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the cluster key to sign with (a name), or a cosign key file")
	return cmd
}

// signingKey is what a --key or --sign value names: a cluster key, or a
// private key read from a cosign key file.
type signingKey struct {
	name string
	der  []byte
}

// readSigningKey reads v: a cluster key name as it is, a key file
// decrypted with $COSIGN_PASSWORD.
func readSigningKey(v string) (signingKey, error) {
	if !looksLikeKeyFile(v) {
		return signingKey{name: v}, nil
	}
	der, err := readCosignKey(v)
	if err != nil {
		return signingKey{}, fmt.Errorf("--key %s: %w", v, err)
	}
	return signingKey{der: der}, nil
}

func (k signingKey) request(namespace, image string) *berthv1.SignImageRequest {
	return &berthv1.SignImageRequest{Namespace: namespace, Image: image, Key: k.name, PrivateKey: k.der}
}

// forget wipes the private key read from a file.
func (k signingKey) forget() { clear(k.der) }

// looksLikeKeyFile tells a key file from a key name: an existing file, or
// a path (a slash, or a .pub, .pem or .key name). Key names are plain
// words, so the two never meet.
func looksLikeKeyFile(s string) bool {
	if strings.ContainsRune(s, '/') || strings.ContainsRune(s, os.PathSeparator) {
		return true
	}
	switch filepath.Ext(s) {
	case ".pub", ".pem", ".key":
		return true
	}
	st, err := os.Stat(s)
	return err == nil && st.Mode().IsRegular()
}

// trustKeys turns --key values into the keys of a policy: cluster key
// names as they are, key files read here.
func trustKeys(values []string) ([]*berthv1.TrustKey, error) {
	var out []*berthv1.TrustKey
	for _, v := range values {
		if !looksLikeKeyFile(v) {
			out = append(out, &berthv1.TrustKey{Name: v, Cluster: true})
			continue
		}
		data, err := os.ReadFile(v)
		if err != nil {
			return nil, fmt.Errorf("--key %s: %w; give a public key file (PEM) or the name of a cluster key", v, err)
		}
		if len(data) > 64<<10 {
			return nil, fmt.Errorf("--key %s: %d bytes is too large for a public key file", v, len(data))
		}
		out = append(out, &berthv1.TrustKey{Name: filepath.Base(v), PublicKeyPem: string(data)})
	}
	return out, nil
}

func newTrustCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Manage trust policies: which keys must sign the images a namespace runs",
		Long: `Manage the trust policies of a namespace. A policy names a pattern of
registry/repository (* matches within one path segment, ** across them) and
the keys it trusts: cluster keys by name, or public key files (such as
cosign.pub). An apply, scale, restart or rollback that would run an image a
policy covers without a valid signature by one of its keys is refused, and
a node rejects such a task before it makes its container. When several
policies match, the most specific pattern decides.`,
		Example: `  berth trust set '127.0.0.1:5000/team/*' --key release
  berth trust set 'registry.example.com/**' --key ./cosign.pub --key release
  berth trust ls
  berth trust rm '127.0.0.1:5000/team/*'`,
		GroupID: groupCluster,
	}
	cmd.AddCommand(newTrustSetCommand(o), newTrustListCommand(o), newTrustRemoveCommand(o))
	requireSubcommand(cmd)
	return cmd
}

func newTrustSetCommand(o *rootOptions) *cobra.Command {
	var keys []string
	cmd := &cobra.Command{
		Use:   "set PATTERN --key NAME|FILE...",
		Short: "Make or replace the policy of a registry/repository pattern",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(keys) == 0 {
				return usageErrorf("%s", "trust set: --key is required: a cluster key name or a public key file")
			}
			tks, err := trustKeys(keys)
			if err != nil {
				return fmt.Errorf("trust set %s: %w", args[0], err)
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				var header metadata.MD
				resp, err := c.SetTrustPolicy(ctx, &berthv1.SetTrustPolicyRequest{Namespace: c.namespace, Pattern: args[0], Keys: tks}, grpc.Header(&header))
				if err != nil {
					return fmt.Errorf("trust set %s: %w", args[0], err)
				}
				printWarnings(cmd.ErrOrStderr(), header)
				p := resp.GetPolicy()
				fmt.Fprintf(cmd.OutOrStdout(), "trust policy %s set in namespace %s: keys %s\n", p.GetPattern(), p.GetNamespace(), policyKeys(p))
				if m := resp.GetMatchingServices(); len(m) > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "covers services: %s\n", strings.Join(m, ", "))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVar(&keys, "key", nil, "a key the policy trusts: a cluster key name or a public key file (repeatable)")
	return cmd
}

func policyKeys(p *berthv1.TrustPolicy) string {
	names := make([]string, 0, len(p.GetKeys()))
	for _, k := range p.GetKeys() {
		if k.GetCluster() {
			names = append(names, k.GetName())
		} else {
			names = append(names, "file:"+k.GetName())
		}
	}
	return strings.Join(names, ",")
}

type policyRow struct {
	Namespace string   `json:"namespace"`
	Pattern   string   `json:"pattern"`
	Keys      []string `json:"keys"`
	Updated   string   `json:"updated"`
}

func newTrustListCommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List trust policies",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.ListTrustPolicies(ctx, &berthv1.ListTrustPoliciesRequest{Namespace: c.namespace, AllNamespaces: c.allNamespaces})
				if err != nil {
					return fmt.Errorf("trust ls: %w", err)
				}
				rows := []policyRow{}
				for _, p := range resp.GetPolicies() {
					rows = append(rows, policyRow{Namespace: p.GetNamespace(), Pattern: p.GetPattern(), Keys: strings.Split(policyKeys(p), ","), Updated: stamp(p.GetMeta().GetUpdatedAt())})
				}
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
					fmt.Fprintln(w, "NAMESPACE\tPATTERN\tKEYS\tUPDATED")
					for _, r := range rows {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Namespace, r.Pattern, strings.Join(r.Keys, ","), r.Updated)
					}
				})
			})
		},
	}
	out = addOutputFlag(cmd)
	addAllNamespacesFlag(cmd, o)
	return cmd
}

func newTrustRemoveCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "rm PATTERN",
		Aliases: []string{"remove"},
		Short:   "Remove a trust policy",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				if _, err := c.RemoveTrustPolicy(ctx, &berthv1.RemoveTrustPolicyRequest{Namespace: c.namespace, Pattern: args[0]}); err != nil {
					return fmt.Errorf("trust rm %s: %w", args[0], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "trust policy %s removed\n", args[0])
				return nil
			})
		},
	}
}

type tagRow struct {
	Tag    string `json:"tag"`
	Digest string `json:"digest"`
}

func newImageTagsCommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:   "tags REPOSITORY",
		Short: "List a repository's tags and their digests, from its registry",
		Long: `Ask REPOSITORY's registry for its tags (the OCI distribution tag list) and
the manifest digest each points to, with the credential the cluster holds
for the registry. Signature tags (sha256-<hex>.sig) are left out.`,
		Example: `  berth image tags 127.0.0.1:5000/team/app`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.ListImageTags(ctx, &berthv1.ListImageTagsRequest{Repository: args[0]})
				if err != nil {
					return fmt.Errorf("image tags %s: %w", args[0], err)
				}
				rows := []tagRow{}
				for _, t := range resp.GetTags() {
					rows = append(rows, tagRow{Tag: t.GetTag(), Digest: t.GetDigest()})
				}
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
					fmt.Fprintln(w, "TAG\tDIGEST")
					for _, r := range rows {
						fmt.Fprintf(w, "%s\t%s\n", r.Tag, r.Digest)
					}
				})
			})
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}
