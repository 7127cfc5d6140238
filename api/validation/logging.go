package validation

import (
	"fmt"
	"strconv"
	"strings"

	units "github.com/docker/go-units"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// LogDriver is the one log driver Berth's nodes run: Docker's json-file
// shape, rotated by size.
const LogDriver = "json-file"

// The log limits of a cluster that sets none: 10 MB × 3, like Docker's
// recommended json-file settings.
const (
	DefaultLogMaxSize  = 10 * 1000 * 1000
	DefaultLogMaxFiles = 3
)

// Bounds of the log limits: a file under MinLogSize would rotate at every
// few lines; more than MaxLogFiles files is a sign of a typo.
const (
	MinLogSize  = 1000
	MaxLogSize  = 1 << 40
	MaxLogFiles = 100
)

// ParseLogSize reads a json-file max-size the way Docker does: a number
// of bytes with an optional unit, decimal (10m is 10,000,000 bytes; k, m,
// g, also kb, mb, gb).
func ParseLogSize(s string) (int64, error) {
	n, err := units.FromHumanSize(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("max-size %q is not a size; write it like 10m or 500k", s)
	}
	if reason := logSizeReason(n); reason != "" {
		return 0, fmt.Errorf("max-size %q %s", s, reason)
	}
	return n, nil
}

// ParseLogFiles reads a json-file max-file: a count of files, 1 to
// MaxLogFiles.
func ParseLogFiles(s string) (uint32, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("max-file %q is not a number of files; write it like \"3\"", s)
	}
	if reason := logFilesReason(uint32(n)); reason != "" {
		return 0, fmt.Errorf("max-file %q %s", s, reason)
	}
	return uint32(n), nil
}

func logSizeReason(n int64) string {
	switch {
	case n < MinLogSize:
		return fmt.Sprintf("is under the smallest log file of %d bytes (1k)", MinLogSize)
	case n > MaxLogSize:
		return "is over the largest log file of 1 TiB"
	}
	return ""
}

func logFilesReason(n uint32) string {
	if n < 1 || n > MaxLogFiles {
		return fmt.Sprintf("must be from 1 to %d", MaxLogFiles)
	}
	return ""
}

// ValidateLogConfig returns what is wrong with a log config, field by
// field ("driver", "options.max-size", "options.max-file"); zero fields
// are unset and fine.
func ValidateLogConfig(c *berthv1.LogConfig) map[string]string {
	out := map[string]string{}
	if d := c.GetDriver(); d != "" && d != LogDriver {
		out["driver"] = fmt.Sprintf("log driver %q is not supported; Berth's nodes keep json-file logs (rotated by options max-size and max-file)", d)
	}
	if n := c.GetMaxSize(); n != 0 {
		if r := logSizeReason(n); r != "" {
			out["options.max-size"] = fmt.Sprintf("%d bytes %s", n, r)
		}
	}
	if n := c.GetMaxFile(); n != 0 {
		if r := logFilesReason(n); r != "" {
			out["options.max-file"] = fmt.Sprintf("%d %s", n, r)
		}
	}
	return out
}

func (v *specValidator) logging(c *berthv1.LogConfig) {
	for _, field := range []string{"driver", "options.max-size", "options.max-file"} {
		if reason, ok := ValidateLogConfig(c)[field]; ok {
			v.add("logging."+field, reason)
		}
	}
}
