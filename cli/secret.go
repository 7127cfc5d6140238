package cli

import (
	"context"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newSecretCommand(o *rootOptions) *cobra.Command {
	return newFileCommand(o, secretAPI, &cobra.Command{
		Use:     "secret",
		Aliases: []string{"secrets"},
		Short:   "Manage secrets: data only the tasks that use them can read",
		Long: `Manage secrets. A secret's data is sealed in the cluster's store with the
key-encryption key, which the store does not hold; it travels only to the
nodes that run a task using it, lives there in memory, and appears in the
containers as a file (/run/secrets/NAME by default). No command shows it:
answers carry its version and a digest.

An app's Compose file makes its own secrets ("<app>_<key>"), which go with
the app. The secrets made here are shared: apps use them with
external: true.`,
		Example: `  printf %s "$DB_PASSWORD" | berth secret create db_password -
  berth secret create tls_key ./tls.key --label team=core
  berth secret create db_password ./new-password --update   # rolls out its services

  # compose.yaml of an app that uses it
  secrets:
    db_password:
      external: true`,
	})
}

var secretAPI = fileAPI{
	word: "secret",
	create: func(ctx context.Context, c *cluster, name string, data []byte, labels map[string]string, update bool) (fileRow, error) {
		sec, err := c.CreateSecret(ctx, &berthv1.CreateSecretRequest{Namespace: c.namespace, Name: name, Data: data, Labels: labels, Update: update})
		if err != nil {
			return fileRow{}, err
		}
		return secretRow(&berthv1.SecretSummary{Secret: sec}), nil
	},
	list: func(ctx context.Context, c *cluster) ([]fileRow, error) {
		resp, err := c.ListSecrets(ctx, &berthv1.ListSecretsRequest{Namespace: c.namespace, AllNamespaces: c.allNamespaces})
		if err != nil {
			return nil, err
		}
		rows := []fileRow{}
		for _, s := range resp.GetSecrets() {
			rows = append(rows, secretRow(s))
		}
		return rows, nil
	},
	get: func(ctx context.Context, c *cluster, name string, _ bool) (fileRow, error) {
		s, err := c.GetSecret(ctx, &berthv1.GetSecretRequest{Namespace: c.namespace, Name: name})
		if err != nil {
			return fileRow{}, err
		}
		return secretRow(s), nil
	},
	remove: func(ctx context.Context, c *cluster, name string) error {
		_, err := c.RemoveSecret(ctx, &berthv1.RemoveSecretRequest{Namespace: c.namespace, Name: name})
		return err
	},
}

// secretRow is a secret as the commands show it: never its data.
func secretRow(s *berthv1.SecretSummary) fileRow {
	sec := s.GetSecret()
	return fileRow{
		Namespace: sec.GetNamespace(), Name: sec.GetName(), App: sec.GetApp(), Version: sec.GetVersion(),
		Digest: sec.GetDigest(), Size: sec.GetSize(), Labels: sec.GetLabels(), Services: nonNil(s.GetServices()),
		Created: timeOf(sec.GetMeta().GetCreatedAt()), Updated: timeOf(sec.GetMeta().GetUpdatedAt()),
		updated: sec.GetMeta().GetUpdatedAt(),
	}
}
