package worker

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/berthproject/berth/agent/runtime"
)

func TestClassify(t *testing.T) {
	boom := errors.New("boom")
	gone := fmt.Errorf("runtime: container t1: %w", runtime.ErrNotFound)
	exists := fmt.Errorf("runtime: create container t1: %w", runtime.ErrExists)
	noImage := fmt.Errorf("runtime: image busybox: %w", runtime.ErrImageNotFound)
	tests := []struct {
		name string
		op   op
		err  error
		want verdict
	}{
		{"no error", opStart, nil, verdictDone},
		{"no error from a stop", opStop, nil, verdictDone},
		{"cut short", opImage, cutShort(context.Canceled), verdictRetry},
		{"cut short wins over the step", opCreate, cutShort(boom), verdictRetry},
		{"missing image", opImage, noImage, verdictReject},
		{"pull failed", opImage, boom, verdictReject},
		{"create failed", opCreate, boom, verdictReject},
		{"image missing at create", opCreate, noImage, verdictReject},
		{"container exists already", opCreate, exists, verdictDone},
		{"start failed", opStart, boom, verdictFail},
		{"start of a missing container", opStart, gone, verdictFail},
		{"wait failed", opWait, boom, verdictFail},
		{"stop of a missing container", opStop, gone, verdictDone},
		{"stop failed", opStop, boom, verdictFail},
		{"remove of a missing container", opRemove, gone, verdictDone},
		{"remove failed", opRemove, boom, verdictFail},
	}
	for _, tt := range tests {
		if got := classify(tt.op, tt.err); got != tt.want {
			t.Errorf("%s: classify(%d, %v) = %d, want %d", tt.name, tt.op, tt.err, got, tt.want)
		}
	}
}

func TestCutShort(t *testing.T) {
	if cutShort(nil) != nil {
		t.Errorf("cutShort(nil) != nil")
	}
	err := cutShort(context.Canceled)
	if !errors.Is(err, errCutShort) || !errors.Is(err, context.Canceled) {
		t.Errorf("cutShort(context.Canceled) = %v; want it to wrap both errCutShort and context.Canceled", err)
	}
}
