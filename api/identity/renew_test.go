package identity

import (
	"crypto/x509"
	"math/big"
	"testing"
	"time"
)

func TestRenewIn(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	cert := &x509.Certificate{NotBefore: start, NotAfter: start.Add(year)}
	twoThirds := start.Add(year / 3 * 2)
	tests := []struct {
		name string
		now  time.Time
		want time.Duration
	}{
		{"just issued", start, year / 3 * 2},
		{"one day before two thirds", twoThirds.Add(-24 * time.Hour), 24 * time.Hour},
		{"at two thirds", twoThirds, 0},
		{"after two thirds", twoThirds.Add(time.Hour), -time.Hour},
		{"expired", start.Add(2 * year), twoThirds.Sub(start.Add(2 * year))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RenewIn(cert, tt.now); got != tt.want {
				t.Errorf("RenewIn at %s = %s, want %s", tt.now, got, tt.want)
			}
		})
	}
	// A certificate that ends before it starts is renewed at once.
	if got := RenewAt(start, start.Add(-time.Second)); !got.Equal(start) {
		t.Errorf("RenewAt of an empty lifetime = %s, want its start", got)
	}
}

func TestSerialHex(t *testing.T) {
	for _, tt := range []struct {
		serial *big.Int
		want   string
	}{
		{big.NewInt(255), "ff"},
		{new(big.Int).Lsh(big.NewInt(1), 64), "10000000000000000"},
	} {
		if got := SerialHex(&x509.Certificate{SerialNumber: tt.serial}); got != tt.want {
			t.Errorf("SerialHex(%s) = %q, want %q", tt.serial, got, tt.want)
		}
	}
	if got := SerialHex(nil); got != "" {
		t.Errorf("SerialHex(nil) = %q, want empty", got)
	}
}
