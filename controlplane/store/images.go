package store

import (
	"context"
	"errors"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// ImagesPrefix holds one ImageRecord per image the control plane built or
// imported, keyed by its full name: the only digests, besides a
// registry's, that apply pins a tag to.
const ImagesPrefix = Root + "images/"

// ImageKey is where the record of image (full form) lives.
func ImageKey(image string) string { return ImagesPrefix + image }

// PutImageRecords writes recs, replacing the records of the same names:
// a rebuilt or re-imported image stands for its new digest.
func (s *Store) PutImageRecords(ctx context.Context, recs []*berthv1.ImageRecord) error {
	txn := &Txn{}
	for _, r := range recs {
		txn.Put(ImageKey(r.Image), r)
	}
	_, err := s.Commit(ctx, txn)
	return err
}

// ImageRecord returns the record of image (full form), or nil when the
// control plane neither built nor imported it.
func (s *Store) ImageRecord(ctx context.Context, image string) (*berthv1.ImageRecord, error) {
	var r berthv1.ImageRecord
	err := s.GetMessage(ctx, ImageKey(image), &r)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}
