package worker

import (
	"errors"
	"fmt"

	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// op names the step of a task's life an error came from; what an error
// means depends on it.
type op int

// The steps of a task's life that can fail.
const (
	opImage  op = iota // making sure the task's image is on the node
	opCreate           // creating the container
	opStart            // starting the container
	opWait             // watching the container's process
	opStop             // stopping the container
	opRemove           // removing the container
)

// verdict is what an error means for the task.
type verdict int

// The verdicts, as in swarmkit's task controller: retry, reject, fail,
// plus done for an error that leaves the step's goal met.
const (
	// verdictDone: no error, or one that leaves the step's goal met (the
	// container exists already, or is gone already).
	verdictDone verdict = iota
	// verdictRetry: the step was cut short (the worker stops or the task
	// is leaving). Nothing is reported; the next step decides again.
	verdictRetry
	// verdictReject: the task cannot run on this node (its image is not
	// here, its container cannot be made); it becomes REJECTED, for the
	// control plane to place it again.
	verdictReject
	// verdictFail: the task's container failed (to start, to be watched,
	// to stop); it becomes FAILED, for the restart policy.
	verdictFail
)

// errCutShort marks an error of a step that was cut short: the worker
// stops or the task is no longer wanted here.
var errCutShort = errors.New("cut short")

// cutShort marks err as the error of a step cut short; nil stays nil.
func cutShort(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", errCutShort, err)
}

// classify says what err, from step o, means for the task. It is the one
// place where the worker decides that.
func classify(o op, err error) verdict {
	switch {
	case err == nil:
		return verdictDone
	case errors.Is(err, errCutShort):
		return verdictRetry
	}
	switch o {
	case opImage:
		return verdictReject
	case opCreate:
		// A container left by an earlier try is the one this step makes.
		if errors.Is(err, runtime.ErrExists) {
			return verdictDone
		}
		return verdictReject
	case opStop, opRemove:
		if errors.Is(err, runtime.ErrNotFound) {
			return verdictDone
		}
		return verdictFail
	default:
		return verdictFail
	}
}

// handle reports what err, from step o, means for the task: REJECTED or
// FAILED with the error (prefixed with what, when set). It returns whether
// the step may go on.
func (r *runner) handle(o op, err error, what string) bool {
	var state berthv1.TaskState
	switch classify(o, err) {
	case verdictDone:
		return true
	case verdictRetry:
		return false
	case verdictReject:
		state = berthv1.TaskState_TASK_STATE_REJECTED
	default:
		state = berthv1.TaskState_TASK_STATE_FAILED
	}
	if what != "" {
		err = fmt.Errorf("%s: %w", what, err)
	}
	r.fail(state, err)
	return false
}
