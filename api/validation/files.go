package validation

import (
	"fmt"
	"regexp"
)

// MaxFileSize is the most data a secret or config holds: 500 KiB, as in
// Docker Swarm. Their data travels in assignments and lives in memory on
// the nodes.
const MaxFileSize = 500 * 1024

// maxFileNameLength leaves room for "<app>_<key>" names.
const maxFileNameLength = 128

var fileNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ValidateFileName checks the name of a secret or config (kind says
// which): 1 to 128 letters, digits, '_', '.' and '-', starting with a
// letter or digit.
func ValidateFileName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty; give a name of letters, digits, '_', '.' and '-'", kind)
	}
	if len(name) > maxFileNameLength || !fileNameRE.MatchString(name) {
		return fmt.Errorf("invalid %s name %q: use at most %d letters, digits, '_', '.' and '-', starting with a letter or digit", kind, name, maxFileNameLength)
	}
	return nil
}

// ValidateFileSize checks the size of a secret's or config's data.
func ValidateFileSize(kind string, size int) error {
	if size > MaxFileSize {
		return fmt.Errorf("the %s's data is %d bytes, over the limit of %d (500 KiB); keep large files in an image or a volume", kind, size, MaxFileSize)
	}
	return nil
}
