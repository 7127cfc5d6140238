package apiserver

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// normalizeLogDefaults checks the default log limits of a settings
// update; nil when they set nothing (Berth's defaults).
func normalizeLogDefaults(c *berthv1.LogConfig) (*berthv1.LogConfig, error) {
	if c.GetMaxSize() == 0 && c.GetMaxFile() == 0 && c.GetDriver() == "" {
		return nil, nil
	}
	problems := validation.ValidateLogConfig(c)
	if len(problems) > 0 {
		var msgs []string
		for _, field := range slices.Sorted(maps.Keys(problems)) {
			msgs = append(msgs, "logging."+field+": "+problems[field])
		}
		return nil, status.Error(codes.InvalidArgument, strings.Join(msgs, "; "))
	}
	return &berthv1.LogConfig{MaxSize: c.GetMaxSize(), MaxFile: c.GetMaxFile()}, nil
}

// logDefaultsWords is how the settings event names the default log
// limits, when set.
func logDefaultsWords(c *berthv1.LogConfig) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf(", log limits %d bytes × %d files (0: Berth's default)", c.GetMaxSize(), c.GetMaxFile())
}
