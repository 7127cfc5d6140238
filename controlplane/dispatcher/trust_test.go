package dispatcher

import (
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestImageTrust(t *testing.T) {
	task := func(ns, image string) *berthv1.Task {
		return &berthv1.Task{Namespace: ns, Spec: &berthv1.ServiceSpec{Image: image}}
	}
	var asked []string
	trustOf := func(ns, image string) *berthv1.ImageTrust {
		asked = append(asked, ns+" "+image)
		if ns == "default" && image == "reg.example.com/team/app:1" {
			return &berthv1.ImageTrust{Namespace: ns, Image: image, Policy: "reg.example.com/team/*"}
		}
		return nil
	}
	tasks := []*berthv1.Task{
		task("default", "reg.example.com/team/app:1"),
		task("default", "reg.example.com/team/app:1"), // another replica: asked once
		task("other", "reg.example.com/team/app:1"),   // another namespace: its own answer
		task("default", "busybox"),                    // no policy: nothing sent
		task("default", ""),                           // built, no image yet
	}
	got := imageTrust(tasks, trustOf)
	if len(got) != 1 || got[0].Namespace != "default" || got[0].Policy != "reg.example.com/team/*" {
		t.Fatalf("imageTrust = %v", got)
	}
	if len(asked) != 3 {
		t.Fatalf("asked %d times (%v), want once per namespace and image", len(asked), asked)
	}
	if got := imageTrust(tasks, nil); got != nil {
		t.Fatalf("without a trust source: %v", got)
	}
}
