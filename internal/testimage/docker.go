package testimage

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"

	"github.com/berthproject/berth/api/imageref"
)

// WriteDockerArchive writes files as a one-layer image in the
// docker-archive format (what `docker save` writes), tagged ref.
func WriteDockerArchive(w io.Writer, ref string, files []File, cfg Config) error {
	named, err := imageref.Parse(ref)
	if err != nil {
		return fmt.Errorf("testimage: %w", err)
	}
	gzLayer, diffID, err := buildLayer(files)
	if err != nil {
		return err
	}
	zr, err := gzip.NewReader(bytes.NewReader(gzLayer))
	if err != nil {
		return fmt.Errorf("testimage: layer: %w", err)
	}
	layer, err := io.ReadAll(zr)
	if err != nil {
		return fmt.Errorf("testimage: layer: %w", err)
	}
	configBlob, err := marshalConfig(cfg, diffID)
	if err != nil {
		return fmt.Errorf("testimage: encode config: %w", err)
	}
	configName := descriptor("", configBlob).Digest.Encoded() + ".json"
	layerName := diffID.Encoded() + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{{
		"Config":   configName,
		"RepoTags": []string{named.Familiar()},
		"Layers":   []string{layerName},
	}})
	if err != nil {
		return fmt.Errorf("testimage: encode manifest: %w", err)
	}
	return writeArchive(w, nil, []archiveEntry{{configName, configBlob}, {layerName, layer}, {"manifest.json", manifest}})
}
