package validation

import "fmt"

// ValidateNamespaceName checks the name of a namespace being created: a
// DNS label (1 to 63 lowercase letters, digits and '-', starting and
// ending with a letter or digit), since a namespace may become part of the
// names its services are looked up by.
func ValidateNamespaceName(name string) error {
	if isDNSLabel(name) && name == ServiceNameKey(name) {
		return nil
	}
	msg := fmt.Sprintf("invalid namespace name %q: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit", name)
	if s := suggestDNSLabel(name); s != "" && s != name {
		msg += fmt.Sprintf(", for example %q", s)
	}
	return fmt.Errorf("%s", msg)
}
