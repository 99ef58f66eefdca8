package x509

import (
	"bytes"
	"crypto"
	cx509 "crypto/x509"
	"slices"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// MaxOCSPResponseBytes bounds an OCSP response.
const MaxOCSPResponseBytes = 64 << 10

// OCSPWithoutNextUpdate is how long an OCSP "good" answer without a
// nextUpdate counts as current after its thisUpdate.
const OCSPWithoutNextUpdate = time.Hour

// OCSPRequest is the DER OCSP request for cert, which issuer signed
// (SHA-1 CertID, which every responder understands).
func OCSPRequest(cert, issuer *cx509.Certificate) ([]byte, error) {
	return ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
}

// OCSPAnswer is a checked OCSP answer for one certificate.
type OCSPAnswer struct {
	Revoked                bool
	RevokedAt              time.Time
	ThisUpdate, NextUpdate time.Time
}

// CheckOCSP parses an OCSP response about cert and checks it: signed by
// issuer, or by a responder certificate issuer signed for OCSP signing
// (and valid now); about cert's serial. A revoked answer is returned
// whatever its age; a good one must be current (thisUpdate no later than
// now plus ClockSkew, nextUpdate after now, or thisUpdate within
// OCSPWithoutNextUpdate when it has none). An unknown answer, or one
// that fails a check, is an error.
func CheckOCSP(der []byte, cert, issuer *cx509.Certificate, now time.Time) (*OCSPAnswer, error) {
	if len(der) > MaxOCSPResponseBytes {
		return nil, fault.Invalidf("the OCSP response is %d bytes, at most %d allowed", len(der), MaxOCSPResponseBytes)
	}
	resp, err := ocsp.ParseResponseForCert(der, cert, issuer)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "the OCSP response is not valid")
	}
	if rc := resp.Certificate; rc != nil && !bytes.Equal(rc.Raw, issuer.Raw) {
		// A delegated responder: the issuer signed it (checked by
		// ParseResponseForCert) for OCSP signing, and it is valid now.
		if !slices.Contains(rc.ExtKeyUsage, cx509.ExtKeyUsageOCSPSigning) {
			return nil, fault.Invalidf("the OCSP responder's certificate is not for OCSP signing")
		}
		if now.Before(rc.NotBefore) || now.After(rc.NotAfter) {
			return nil, fault.Invalidf("the OCSP responder's certificate is outside its validity period")
		}
	}
	if resp.SerialNumber == nil || resp.SerialNumber.Cmp(cert.SerialNumber) != 0 {
		return nil, fault.Invalidf("the OCSP response is about another certificate")
	}
	a := &OCSPAnswer{ThisUpdate: resp.ThisUpdate, NextUpdate: resp.NextUpdate}
	switch resp.Status {
	case ocsp.Revoked:
		a.Revoked, a.RevokedAt = true, resp.RevokedAt
		return a, nil
	case ocsp.Good:
	default:
		return nil, fault.Invalidf("the OCSP responder does not know the certificate")
	}
	if !a.Current(now) {
		return nil, fault.Invalidf("the OCSP response is not current (thisUpdate %s, nextUpdate %s)", a.ThisUpdate.UTC().Format(time.RFC3339), a.NextUpdate.UTC().Format(time.RFC3339))
	}
	return a, nil
}

// Current reports whether the answer may be relied on at now.
func (a *OCSPAnswer) Current(now time.Time) bool {
	if now.Before(a.ThisUpdate.Add(-ClockSkew)) {
		return false
	}
	if a.NextUpdate.IsZero() {
		return now.Before(a.ThisUpdate.Add(OCSPWithoutNextUpdate))
	}
	return now.Before(a.NextUpdate)
}
