package vulndb

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
)

// MaxChunkBytes bounds one stored chunk, compressed: well under etcd's
// request limit (1.5 MiB by default), with room for the key and framing.
const MaxChunkBytes = 1 << 20

// rawChunkBytes is how much record JSON goes into a chunk before it is
// compressed; OSV records compress about tenfold, and a chunk that still
// comes out over MaxChunkBytes is split.
const rawChunkBytes = 4 << 20

// Chunk is records encoded for storage: gzip of one compact JSON record a
// line.
type Chunk struct {
	Count int
	Gzip  []byte
}

// Encode packs records into chunks of at most MaxChunkBytes each. Only
// the fields Record keeps are stored.
func Encode(records []*Record) ([]Chunk, error) {
	var out []Chunk
	var lines [][]byte
	size := 0
	flush := func() error {
		if len(lines) == 0 {
			return nil
		}
		cs, err := pack(lines)
		out = append(out, cs...)
		lines, size = nil, 0
		return err
	}
	for _, r := range records {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encoding record %s: %w", r.ID, err)
		}
		if size+len(b) > rawChunkBytes {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		lines = append(lines, b)
		size += len(b) + 1
	}
	return out, flush()
}

// pack compresses lines into one chunk, or splits them in two when that
// chunk would be too large.
func pack(lines [][]byte) ([]Chunk, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	for _, l := range lines {
		zw.Write(l)
		zw.Write([]byte{'\n'})
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if buf.Len() <= MaxChunkBytes {
		return []Chunk{{Count: len(lines), Gzip: buf.Bytes()}}, nil
	}
	if len(lines) == 1 {
		return nil, fmt.Errorf("one record is %d bytes compressed, over the %d a chunk holds", buf.Len(), MaxChunkBytes)
	}
	a, err := pack(lines[:len(lines)/2])
	if err != nil {
		return nil, err
	}
	b, err := pack(lines[len(lines)/2:])
	return append(a, b...), err
}

// Decode reads the records of a stored chunk.
func Decode(gz []byte) ([]*Record, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("vulndb: chunk: %w", err)
	}
	var out []*Record
	br := bufio.NewReaderSize(zr, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var r Record
			if err := json.Unmarshal(line, &r); err != nil {
				return nil, fmt.Errorf("vulndb: chunk record: %w", err)
			}
			out = append(out, &r)
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("vulndb: chunk: %w", err)
		}
	}
}
