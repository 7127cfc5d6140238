package cli

import (
	"strconv"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// logLimitFlags are the settings flags of the cluster's default log
// limits: what a service's containers keep when its logging: sets none.
type logLimitFlags struct {
	maxSize, maxFile string
	size             int64
	files            uint32
}

func (f *logLimitFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.maxSize, "log-max-size", "", "default size past which a container's log file is rotated (10m, 500k; 0 for Berth's 10m)")
	cmd.Flags().StringVar(&f.maxFile, "log-max-file", "", "default number of log files kept per container, the current one included (0 for Berth's 3)")
}

// check parses the flags given, as usage errors.
func (f *logLimitFlags) check(cmd *cobra.Command) error {
	if cmd.Flags().Changed("log-max-size") && f.maxSize != "0" {
		n, err := validation.ParseLogSize(f.maxSize)
		if err != nil {
			return usageErrorf("--log-max-size: %v", err)
		}
		f.size = n
	}
	if cmd.Flags().Changed("log-max-file") && f.maxFile != "0" {
		n, err := validation.ParseLogFiles(f.maxFile)
		if err != nil {
			return usageErrorf("--log-max-file: %v", err)
		}
		f.files = n
	}
	return nil
}

func (f *logLimitFlags) changed(cmd *cobra.Command) bool {
	return cmd.Flags().Changed("log-max-size") || cmd.Flags().Changed("log-max-file")
}

// apply sets the flags given on s.
func (f *logLimitFlags) apply(cmd *cobra.Command, s *berthv1.ClusterSettings) {
	if !f.changed(cmd) {
		return
	}
	if s.Logging == nil {
		s.Logging = &berthv1.LogConfig{}
	}
	if cmd.Flags().Changed("log-max-size") {
		s.Logging.MaxSize = f.size
	}
	if cmd.Flags().Changed("log-max-file") {
		s.Logging.MaxFile = f.files
	}
}

// logLimitsInForce are the default log limits s sets, Berth's where it
// sets none: max size in bytes and max files.
func logLimitsInForce(s *berthv1.ClusterSettings) (int64, uint32) {
	size, files := s.GetLogging().GetMaxSize(), s.GetLogging().GetMaxFile()
	if size == 0 {
		size = validation.DefaultLogMaxSize
	}
	if files == 0 {
		files = validation.DefaultLogMaxFiles
	}
	return size, files
}

// logSizeWords shows a log size as Docker's options write it, when it is
// a round number of k, m or g.
func logSizeWords(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"g", 1e9}, {"m", 1e6}, {"k", 1e3}} {
		if n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
