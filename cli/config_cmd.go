package cli

import (
	"context"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newConfigCommand(o *rootOptions) *cobra.Command {
	return newFileCommand(o, configAPI, &cobra.Command{
		Use:     "config",
		Aliases: []string{"configs"},
		Short:   "Manage configs: files the tasks that use them read",
		Long: `Manage configs. A config is a file the containers of the services that use
it read, mounted read-only at its target; unlike a secret it is not
sealed, and inspect --data shows it.

An app's Compose file makes its own configs ("<app>_<key>"), which go with
the app. The configs made here are shared: apps use them with
external: true.`,
		Example: `  berth config create nginx.conf ./nginx.conf
  berth config create nginx.conf ./nginx.conf --update   # rolls out its services
  berth config inspect nginx.conf --data`,
	})
}

var configAPI = fileAPI{
	word: "config",
	create: func(ctx context.Context, c *cluster, name string, data []byte, labels map[string]string, update bool) (fileRow, error) {
		cf, err := c.CreateConfig(ctx, &berthv1.CreateConfigRequest{Namespace: c.namespace, Name: name, Data: data, Labels: labels, Update: update})
		if err != nil {
			return fileRow{}, err
		}
		return configRow(&berthv1.ConfigSummary{Config: cf}, false), nil
	},
	list: func(ctx context.Context, c *cluster) ([]fileRow, error) {
		resp, err := c.ListConfigs(ctx, &berthv1.ListConfigsRequest{Namespace: c.namespace, AllNamespaces: c.allNamespaces})
		if err != nil {
			return nil, err
		}
		rows := []fileRow{}
		for _, s := range resp.GetConfigs() {
			rows = append(rows, configRow(s, false))
		}
		return rows, nil
	},
	get: func(ctx context.Context, c *cluster, name string, withData bool) (fileRow, error) {
		s, err := c.GetConfig(ctx, &berthv1.GetConfigRequest{Namespace: c.namespace, Name: name})
		if err != nil {
			return fileRow{}, err
		}
		return configRow(s, withData), nil
	},
	remove: func(ctx context.Context, c *cluster, name string) error {
		_, err := c.RemoveConfig(ctx, &berthv1.RemoveConfigRequest{Namespace: c.namespace, Name: name})
		return err
	},
}

// configRow is a config as the commands show it; its data only when
// withData.
func configRow(s *berthv1.ConfigSummary, withData bool) fileRow {
	cf := s.GetConfig()
	r := fileRow{
		Namespace: cf.GetNamespace(), Name: cf.GetName(), App: cf.GetApp(), Version: cf.GetVersion(),
		Digest: cf.GetDigest(), Size: cf.GetSize(), Labels: cf.GetLabels(), Services: nonNil(s.GetServices()),
		Created: timeOf(cf.GetMeta().GetCreatedAt()), Updated: timeOf(cf.GetMeta().GetUpdatedAt()),
		updated: cf.GetMeta().GetUpdatedAt(),
	}
	if withData {
		data := string(cf.GetData())
		r.Data = &data
	}
	return r
}
