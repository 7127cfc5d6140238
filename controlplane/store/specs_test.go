package store

import (
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func specTask(version, replicas uint64) *berthv1.Task {
	return &berthv1.Task{ServiceId: "s1", SpecVersion: version, Spec: &berthv1.ServiceSpec{Image: "web:1", Replicas: replicas}}
}

func TestSpecTableSharesEqualSpecs(t *testing.T) {
	var st specTable
	a, b := specTask(1, 3), specTask(1, 3)
	scaled := specTask(1, 5)
	next := specTask(2, 3)
	for _, tk := range []*berthv1.Task{a, b, scaled, next} {
		st.share(tk)
	}
	if a.Spec != b.Spec {
		t.Fatalf("two tasks of one version with equal specs hold two copies")
	}
	if scaled.Spec == a.Spec {
		t.Fatalf("a task whose spec differs (scaled) was given the other copy")
	}
	if next.Spec == a.Spec {
		t.Fatalf("tasks of different versions share a spec")
	}
	for _, tk := range []*berthv1.Task{a, b, scaled, next} {
		st.release(tk)
	}
	if len(st.m) != 0 {
		t.Fatalf("specs kept after every task was released: %d", len(st.m))
	}
}
