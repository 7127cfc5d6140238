package scale

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// metrics is one scrape of a Prometheus text endpoint: each series, as
// written (name{labels}), to its value.
type metrics map[string]float64

// scrape reads the metrics at url.
func scrape(ctx context.Context, client *http.Client, url string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("server metrics at %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("server metrics at %s: %s", url, resp.Status)
	}
	m := metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("server metrics at %s: %w", url, err)
	}
	return m, nil
}

// get is the series name{label="value"}: label is written as in the text
// format, like `state="running"`; "" is the series without labels.
func (m metrics) get(name, label string) float64 {
	if label == "" {
		return m[name]
	}
	return m[name+"{"+label+"}"]
}

// sum adds every series of name.
func (m metrics) sum(name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}

// procStat is what /proc says of a process's CPU and memory.
type procStat struct {
	// CPU is user plus system time.
	CPU time.Duration
	// HWM is the peak resident set (VmHWM), RSS the current one.
	HWM, RSS int64
}

// clockTick is the unit of /proc/PID/stat times: USER_HZ, 100 on Linux
// everywhere.
const clockTick = 10 * time.Millisecond

// readProc reads pid's CPU time and memory from /proc.
func readProc(pid int) (procStat, error) {
	var st procStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// Fields after the command, which may hold spaces, in parentheses.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return st, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	st.CPU = time.Duration(utime+stime) * clockTick
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	st.HWM = procKiB(status, "VmHWM") << 10
	st.RSS = procKiB(status, "VmRSS") << 10
	return st, nil
}

// procKiB is the "KEY:   N kB" value of a /proc file such as
// /proc/PID/status or /proc/meminfo; 0 when absent.
func procKiB(text []byte, key string) int64 {
	for line := range strings.SplitSeq(string(text), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// poolsCPU is the CPU time the running pools have used so far.
func (c *Cluster) poolsCPU() time.Duration {
	var sum time.Duration
	for _, p := range c.pools {
		if ps, err := readProc(p.cmd.Process.Pid); err == nil {
			sum += ps.CPU
		}
	}
	return sum
}

// durations summarizes a set of measured durations.
type durations []time.Duration

func (d durations) sorted() durations {
	s := append(durations(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

// p50 is the median; 0 for none.
func (d durations) p50() time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d.sorted()[(len(d)-1)/2]
}

// max is the largest; 0 for none.
func (d durations) max() time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d.sorted()[len(d)-1]
}
