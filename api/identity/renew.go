package identity

import (
	"crypto/x509"
	"fmt"
	"time"
)

// SerialHex is how Berth writes a certificate's serial number everywhere
// (deny-list keys, node records, logs): lower-case hex without leading
// zeros.
func SerialHex(c *x509.Certificate) string {
	if c == nil || c.SerialNumber == nil {
		return ""
	}
	return fmt.Sprintf("%x", c.SerialNumber)
}

// renewShare is the share of a certificate's lifetime after which its
// holder renews it: late enough not to renew often, early enough that a
// holder that is offline for a while still renews in time.
const renewNum, renewDen = 2, 3

// RenewAt is when the holder of a certificate valid from notBefore to
// notAfter should renew it: two thirds into its lifetime.
func RenewAt(notBefore, notAfter time.Time) time.Time {
	life := notAfter.Sub(notBefore)
	if life <= 0 {
		return notBefore
	}
	return notBefore.Add(life / renewDen * renewNum)
}

// RenewIn is how long from now the holder of c should wait before it
// renews; zero or less means now.
func RenewIn(c *x509.Certificate, now time.Time) time.Duration {
	return RenewAt(c.NotBefore, c.NotAfter).Sub(now)
}
