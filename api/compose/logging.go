package compose

import (
	"fmt"
	"maps"
	"slices"

	"github.com/compose-spec/compose-go/v2/types"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// convertLogging reads a service's logging: the json-file driver (the
// only one Berth's nodes run) and its max-size and max-file options.
func (c *converted) convertLogging(svc types.ServiceConfig) {
	l := svc.Logging
	if l == nil {
		return
	}
	fail := func(field, reason string) {
		c.errs = append(c.errs, validation.FieldError{Service: svc.Name, Field: field, Reason: reason})
	}
	out := &berthv1.LogConfig{Driver: l.Driver}
	if l.Driver != "" && l.Driver != validation.LogDriver {
		fail("logging.driver", fmt.Sprintf("log driver %q is not supported; Berth's nodes keep json-file logs: set driver: json-file or leave it out", l.Driver))
	}
	for _, k := range slices.Sorted(maps.Keys(l.Options)) {
		v := l.Options[k]
		var err error
		switch k {
		case "max-size":
			out.MaxSize, err = validation.ParseLogSize(v)
		case "max-file":
			out.MaxFile, err = validation.ParseLogFiles(v)
		default:
			err = fmt.Errorf("option %q is not honoured; json-file on Berth takes max-size and max-file (max-size: 10m, max-file: \"3\")", k)
		}
		if err != nil {
			fail("logging.options."+k, err.Error())
		}
	}
	c.spec.Logging = out
}
