package image

import (
	"slices"
	"strings"

	"github.com/berthproject/berth/agent/runtime"
)

// Kept is an image a removal leaves, with the containers that use it.
type Kept struct {
	Image string
	// Containers are the IDs of the containers (tasks) made from it.
	Containers []string
	// Running says one of them runs: such an image stays even when the
	// removal is forced.
	Running bool
}

// RemovalPlan is what removing images from one node does: the images to
// remove, those kept because containers use them, and the names asked
// for that the node does not hold.
type RemovalPlan struct {
	Remove  []runtime.Image
	Kept    []Kept
	Missing []string
}

// PlanRemove decides which of the images named (normalized names) may go:
// one a container uses is kept, unless force and none of its containers
// runs. Pure: the caller lists images and containers and removes.
func PlanRemove(images []runtime.Image, containers []runtime.Status, names []string, force bool) RemovalPlan {
	byName := make(map[string]runtime.Image, len(images))
	for _, im := range images {
		byName[im.Name] = im
	}
	var plan RemovalPlan
	for _, name := range names {
		im, ok := byName[name]
		if !ok {
			plan.Missing = append(plan.Missing, name)
			continue
		}
		k := Kept{Image: name}
		for _, c := range containers {
			if c.Image == name {
				k.Containers = append(k.Containers, c.ID)
				k.Running = k.Running || c.State == runtime.StateRunning
			}
		}
		if len(k.Containers) > 0 && (!force || k.Running) {
			slices.Sort(k.Containers)
			plan.Kept = append(plan.Kept, k)
			continue
		}
		plan.Remove = append(plan.Remove, im)
	}
	return plan
}

// PlanPrune returns the images a prune removes: the images no container
// uses (see SelectUnused), all of them with all, else only the dangling
// ones.
func PlanPrune(images []runtime.Image, containers []runtime.Status, all bool) []runtime.Image {
	inUse := map[string]bool{}
	for _, c := range containers {
		inUse[c.Image] = true
	}
	unused := SelectUnused(images, inUse)
	if all {
		return unused
	}
	var out []runtime.Image
	for _, im := range unused {
		if Dangling(im.Name) {
			out = append(out, im)
		}
	}
	return out
}

// Dangling reports whether an image is known by digest alone
// (repository@sha256:..., or a bare digest): no tag names it, so nothing
// refers to it by name.
func Dangling(name string) bool {
	return strings.Contains(name, "@") || strings.HasPrefix(name, "sha256:")
}

// Reclaimable adds up the sizes of the images no container uses, which a
// prune --all could free.
func Reclaimable(images []runtime.Image, containers []runtime.Status) int64 {
	var n int64
	for _, im := range PlanPrune(images, containers, true) {
		n += im.Size
	}
	return n
}
