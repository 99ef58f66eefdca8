package provisioning

import (
	"context"
	"crypto/x509"

	"github.com/zerotouch/zerotouch/enrollment"
)

// RevocationChecker checks a verified X.509 path (leaf first, anchor
// last) against CRLs and OCSP under a group's revocation policy (ADR 23):
// CERTIFICATE_REVOKED, REVOCATION_UNKNOWN, or nil. revocation.Checker
// implements it.
type RevocationChecker interface {
	Check(ctx context.Context, path []*x509.Certificate, p enrollment.RevocationPolicy) error
}
