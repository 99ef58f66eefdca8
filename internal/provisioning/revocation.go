package provisioning

import (
	"context"
	"crypto/x509"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// RevocationChecker checks a verified X.509 path (leaf first, anchor
// last) against CRLs and OCSP under a group's revocation policy (ADR 23):
// CERTIFICATE_REVOKED, REVOCATION_UNKNOWN, or nil. revocation.Checker
// implements it.
type RevocationChecker interface {
	Check(ctx context.Context, path []*x509.Certificate, p enrollment.RevocationPolicy) error
	// RevokedRefs reports whether a CRL held (none is fetched) lists one
	// of the certificates a registration recorded
	// (registry.Credential.X509Chain), and which.
	RevokedRefs(ctx context.Context, refs []registry.CertRef) (registry.CertRef, bool, error)
}

// birthRevoked refuses the renewal of a certificate Zerotouch issued
// (ADR 22) when a CRL held lists a certificate of the device's birth
// chain (what its identity recorded), unless the device's group checks
// no revocation: the certificate Zerotouch issued does not outlive the
// revocation of the one it was issued on.
func (s *Service) birthRevoked(ctx context.Context, reg *registry.Registration, ident *registry.Identity) error {
	if s.Revocation == nil || len(ident.Credential.X509Chain) == 0 {
		return nil
	}
	ref, revoked, err := s.Revocation.RevokedRefs(ctx, ident.Credential.X509Chain)
	if err != nil || !revoked {
		return err
	}
	if !reg.Individual && reg.GroupID != "" {
		g, err := s.Enrollments.GetGroup(ctx, reg.GroupID)
		if err != nil && fault.KindOf(err) != fault.NotFound {
			return err
		}
		if err == nil && g.Revocation.EffectiveCheck() == enrollment.RevocationOff {
			return nil
		}
	}
	return fault.New(fault.Unauthenticated, fault.CertificateRevoked, "a certificate of the device's own chain (serial %s) is revoked; the certificate issued on it cannot be renewed", ref.Serial)
}
