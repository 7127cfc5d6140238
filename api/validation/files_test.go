package validation

import (
	"strings"
	"testing"
)

func TestValidateFileName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"db_password", true},
		{"shop_DB.Password-2", true},
		{"9lives", true},
		{strings.Repeat("a", 128), true},
		{"", false},
		{"_hidden", false},
		{".env", false},
		{"a/b", false},
		{"a b", false},
		{"pässword", false},
		{strings.Repeat("a", 129), false},
	} {
		if err := ValidateFileName("secret", tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidateFileName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestValidateFileSize(t *testing.T) {
	if err := ValidateFileSize("secret", MaxFileSize); err != nil {
		t.Errorf("%d bytes refused: %v", MaxFileSize, err)
	}
	if err := ValidateFileSize("secret", MaxFileSize+1); err == nil || !strings.Contains(err.Error(), "500 KiB") {
		t.Errorf("%d bytes: %v", MaxFileSize+1, err)
	}
}
