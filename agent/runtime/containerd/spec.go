package containerd

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/berthproject/berth/agent/runtime"
)

// Labels the runtime sets on its containers. Only LabelOwner is meant for
// other readers; the berth.runtime.* ones keep what Inspect and List need
// after an agent restart and are hidden from Status.Labels.
const (
	// LabelOwner names the runtime instance (agent) that owns a container,
	// so two agents sharing one containerd never touch each other's.
	LabelOwner        = "berth.owner"
	labelAddress      = "berth.runtime.address"
	labelPorts        = "berth.runtime.ports"
	labelStopSignal   = "berth.runtime.stop-signal"
	labelLogMaxSize   = "berth.runtime.log-max-size"
	labelLogMaxFile   = "berth.runtime.log-max-file"
	runtimeLabelSpace = "berth.runtime."
)

// processArgs returns the container's command line with Compose semantics:
// an Entrypoint in the spec replaces the image's ENTRYPOINT and drops its
// CMD; a Command replaces the image's CMD.
func processArgs(imageEntrypoint, imageCmd []string, spec runtime.ContainerSpec) []string {
	entrypoint, cmd := imageEntrypoint, imageCmd
	if len(spec.Entrypoint) > 0 {
		entrypoint, cmd = spec.Entrypoint, nil
	}
	if len(spec.Command) > 0 {
		cmd = spec.Command
	}
	args := make([]string, 0, len(entrypoint)+len(cmd))
	args = append(args, entrypoint...)
	return append(args, cmd...)
}

// cpuLimits converts millicores to a CFS quota over a 100ms period and to
// relative shares (1024 per core, at least the kernel's minimum of 2).
func cpuLimits(milliCPUs int64) (quota int64, period, shares uint64) {
	const cfsPeriod = 100_000 // microseconds
	quota = milliCPUs * cfsPeriod / 1000
	if quota < 1000 { // the kernel's minimum quota is 1ms
		quota = 1000
	}
	shares = uint64(milliCPUs) * 1024 / 1000
	if shares < 2 {
		shares = 2
	}
	return quota, cfsPeriod, shares
}

// containerLabels returns the labels to set on a new container: the user's,
// then the runtime's, which win.
func containerLabels(owner string, spec runtime.ContainerSpec, att runtime.Attachment) (map[string]string, error) {
	labels := make(map[string]string, len(spec.Labels)+4)
	for k, v := range spec.Labels {
		labels[k] = v
	}
	labels[LabelOwner] = owner
	if att.IP != "" {
		labels[labelAddress] = att.IP
	}
	if len(spec.Ports) > 0 {
		b, err := json.Marshal(spec.Ports)
		if err != nil {
			return nil, fmt.Errorf("encode ports: %w", err)
		}
		labels[labelPorts] = string(b)
	}
	if spec.StopSignal != "" {
		labels[labelStopSignal] = spec.StopSignal
	}
	if spec.Log.MaxSize > 0 {
		labels[labelLogMaxSize] = strconv.FormatInt(spec.Log.MaxSize, 10)
	}
	if spec.Log.MaxFiles > 0 {
		labels[labelLogMaxFile] = strconv.Itoa(spec.Log.MaxFiles)
	}
	return labels, nil
}

// statusFromLabels fills the parts of a Status that live in container labels.
func statusFromLabels(st *runtime.Status, labels map[string]string) {
	st.Address = labels[labelAddress]
	if p := labels[labelPorts]; p != "" {
		// A label this runtime wrote; a broken one only loses the port list.
		_ = json.Unmarshal([]byte(p), &st.Ports)
	}
	st.Labels = make(map[string]string, len(labels))
	for k, v := range labels {
		if k == LabelOwner || strings.HasPrefix(k, runtimeLabelSpace) {
			continue
		}
		st.Labels[k] = v
	}
}
