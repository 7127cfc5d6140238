package trigger

import (
	"fmt"
	"strings"

	controlapi "github.com/moby/buildkit/api/services/control"
)

// Progress turns BuildKit's status updates into log lines as its plain
// display writes them: "#3 [2/3] RUN make", "#3 DONE", "#3 <output>".
type Progress struct {
	// num numbers the steps in the order they first appear.
	num   map[string]int
	state map[string]int // 1: started, 2: ended
}

// Lines is what sr adds to the log.
func (p *Progress) Lines(sr *controlapi.StatusResponse) []string {
	if p.num == nil {
		p.num, p.state = map[string]int{}, map[string]int{}
	}
	id := func(d string) int {
		n, ok := p.num[d]
		if !ok {
			n = len(p.num) + 1
			p.num[d] = n
		}
		return n
	}
	var out []string
	for _, v := range sr.GetVertexes() {
		n := id(v.GetDigest())
		if p.state[v.GetDigest()] == 0 && (v.GetStarted() != nil || v.GetCached()) {
			p.state[v.GetDigest()] = 1
			out = append(out, fmt.Sprintf("#%d %s", n, v.GetName()))
		}
		if p.state[v.GetDigest()] == 1 && (v.GetCompleted() != nil || v.GetCached()) {
			p.state[v.GetDigest()] = 2
			switch {
			case v.GetError() != "":
				out = append(out, fmt.Sprintf("#%d ERROR: %s", n, v.GetError()))
			case v.GetCached():
				out = append(out, fmt.Sprintf("#%d CACHED", n))
			default:
				out = append(out, fmt.Sprintf("#%d DONE", n))
			}
		}
	}
	for _, l := range sr.GetLogs() {
		n := id(l.GetVertex())
		for _, line := range strings.Split(strings.TrimRight(string(l.GetMsg()), "\n"), "\n") {
			out = append(out, fmt.Sprintf("#%d %s", n, line))
		}
	}
	return out
}
