package provisioning

import (
	"context"
	"crypto"
	"crypto/x509"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/enrollment"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/issuance"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// Certificate issuance at registration and renewal (ADR 22). A device
// that sends a CSR gets a certificate from its enrollment's credential
// policy, recorded with its registration in the same write. A device
// that authenticates with a certificate Zerotouch issued it renews: no
// enrollment match, no birth credential, the same identity.

// checkCSR holds the request's CSR (parsed and self-checked) against the attested device and its
// enrollment's policy, and puts it into the plan. It reads only cached
// policies and writes nothing.
func (s *Service) checkCSR(ctx context.Context, csr *x509.CertificateRequest, p *plan) error {
	if csr == nil {
		return nil
	}
	if s.Issuer == nil {
		return fault.New(fault.FailedPrecondition, fault.CredentialPolicyMissing, "this service issues no certificates")
	}
	pol, err := s.Issuer.Policy(ctx, p.settings.CredentialPolicy)
	if err != nil {
		return err
	}
	if err := issuance.CheckCSR(csr, p.regID, pol); err != nil {
		return err
	}
	if p.attType == registry.TPM && len(p.cred.TPMBoundKey) > 0 {
		// The native TPM protocol proved the bound key lives in the TPM:
		// the certificate is for that key or none.
		pub, err := tpm.ParsePublic("bound key", p.cred.TPMBoundKey)
		if err != nil {
			return err
		}
		key, err := tpm.PublicKey(pub)
		if k, ok := csr.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); err != nil || !ok || !k.Equal(key) {
			return fault.New(fault.InvalidArgument, fault.CSRKeyMismatch, "the CSR is not for the TPM key the device proved (bound key)")
		}
	}
	if p.instance == "" {
		// The enrollment that admits the device now: a renewal must find
		// the same one.
		if p.individual {
			ind, err := s.Enrollments.GetIndividual(ctx, p.regID)
			if err != nil {
				return err
			}
			p.instance = enrollmentInstance(false, ind.RegistrationID, ind.Created)
		} else {
			g, err := s.Enrollments.GetGroup(ctx, p.groupID)
			if err != nil {
				return err
			}
			p.instance = enrollmentInstance(true, g.ID, g.Created)
		}
	}
	// The certificate goes back in this answer: a slow custom allocation
	// webhook is waited for rather than answered "assigning" (the device
	// would poll for a registration whose certificate it never gets).
	p.csr, p.policy, p.canPoll = csr, pol, false
	return nil
}

func issuedInfo(iss *issuance.Issued, p plan, now time.Time) *registry.IssuedCertificate {
	return &registry.IssuedCertificate{Serial: iss.Serial(), Thumbprint: iss.Thumbprint(), IssuingCA: p.policy.IssuingCA, NotAfter: iss.Leaf.NotAfter, At: now,
		Policy: p.policy.Name, Enrollment: p.instance}
}

// supersede decides what a new certificate does to the old ones: the
// current one becomes the superseded one (valid for connections until
// the overlap ends), and one superseded before is revoked now.
func supersede(existing *registry.Registration, issued *registry.IssuedCertificate, now time.Time) (cur, sup *registry.IssuedCertificate, revoke []*registry.IssuedCertificate) {
	if existing.Superseded != nil {
		moot := *existing.Superseded
		moot.At = time.Time{} // revoked now
		revoke = append(revoke, &moot)
	}
	if existing.Issued == nil {
		return issued, nil, revoke
	}
	old := *existing.Issued
	old.At = now
	return issued, &old, append(revoke, &old)
}

// revokeSuperseded records the revocations a new certificate caused: the
// superseded one's when the policy's overlap ends, an earlier one's now.
// The registration accepts neither for renewal either way; a failure here
// only delays the CRL, and is logged.
func (s *Service) revokeSuperseded(ctx context.Context, regID string, certs []*registry.IssuedCertificate, pol *issuance.Policy, now time.Time) {
	if s.Issuer == nil {
		return
	}
	for _, c := range certs {
		at := now
		if !c.At.IsZero() && pol != nil {
			at = c.At.Add(pol.Overlap)
		}
		_, err := s.Issuer.Store.Revoke(context.WithoutCancel(ctx), &issuance.Revocation{IssuingCA: c.IssuingCA, Serial: c.Serial,
			RegistrationID: regID, RevokedAt: at, Reason: issuance.ReasonSuperseded, NotAfter: c.NotAfter})
		if err != nil {
			s.log(slog.LevelError, "recording a superseded certificate's revocation failed", "registration_id", regID, "serial", c.Serial, "err", err)
		}
	}
}

// renewal is a device's authentication by a certificate Zerotouch issued.
type renewal struct {
	serial string
	ca     string
}

// stillCurrent checks, against the registration about to be written, that
// the presented certificate is its current one. Only the current one
// renews: a superseded certificate still opens connections until the
// overlap ends, but a stolen copy of it must not outlive that by renewing.
// A device that lost the answer to its renewal registers with its birth
// credential (its manufacturer certificate or TPM), which it always has.
func (r *renewal) stillCurrent(reg *registry.Registration) error {
	if r == nil || reg.Issued != nil && reg.Issued.Serial == r.serial {
		return nil
	}
	return fault.New(fault.Unauthenticated, fault.CertificateRevoked, "the certificate was superseded by a renewal; use the current one or register with the device's own credential")
}

// renewalPlan attests a device by a certificate Zerotouch issued: the
// certificate's registration, still holding it as its current one, not
// revoked, its identity enabled, under the same enrollment that admitted
// it when the certificate was issued (not a namesake created since), still
// there, enabled, and still admitting its birth credential. notOurs says
// the registration never held this serial (the CA may also sign
// manufacturer certificates: the caller tries the enrollments).
func (s *Service) renewalPlan(ctx context.Context, leaf *x509.Certificate, ca *issuance.CA, regID string, now time.Time) (p *plan, notOurs bool, err error) {
	serial := issuance.SerialHex(leaf.SerialNumber)
	if now.Before(leaf.NotBefore) {
		return nil, false, fault.New(fault.Unauthenticated, fault.CertificateNotYetValid, "the certificate is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if !strings.EqualFold(leaf.Subject.CommonName, regID) {
		return nil, false, fault.New(fault.Unauthenticated, fault.RegistrationIDInvalid, "the certificate is not for %q", regID)
	}
	rev, err := s.Issuer.Status(ctx, ca.Name, serial)
	if err != nil {
		return nil, false, err
	}
	if rev != nil {
		return nil, false, fault.New(fault.Unauthenticated, fault.CertificateRevoked, "the certificate was revoked at %s", rev.RevokedAt.UTC().Format(time.RFC3339))
	}
	reg, err := s.Registry.GetRegistration(ctx, regID)
	if fault.KindOf(err) == fault.NotFound {
		return nil, true, fault.New(fault.Unauthenticated, fault.CertificateUntrusted, "the certificate's registration no longer exists; register with the device's own credential")
	}
	if err != nil {
		return nil, false, err
	}
	switch {
	case reg.Superseded != nil && reg.Superseded.Serial == serial:
		return nil, false, fault.New(fault.Unauthenticated, fault.CertificateRevoked, "the certificate was superseded by a renewal; use the current one or register with the device's own credential")
	case reg.Issued == nil || reg.Issued.Serial != serial || reg.Issued.IssuingCA != ca.Name:
		return nil, true, fault.New(fault.Unauthenticated, fault.CertificateRevoked, "the registration does not hold this certificate (superseded, or taken over); register with the device's own credential")
	}
	if reg.Status == registry.Disabled {
		return nil, false, fault.New(fault.PermissionDenied, fault.RegistrationDisabled, "the registration is disabled")
	}
	ident, err := s.Registry.GetIdentity(ctx, reg.DeviceID)
	if err != nil {
		return nil, false, err
	}
	if ident.Status != registry.IdentityEnabled {
		// Disabled with its enrollment, or by a revocation of its birth
		// certificate: only the device's own credential can bring it back.
		return nil, false, fault.New(fault.PermissionDenied, fault.RegistrationDisabled, "the device's identity is disabled; register with the device's own credential")
	}
	if err := s.birthRevoked(ctx, reg, ident); err != nil {
		return nil, false, err
	}
	out := plan{regID: reg.RegistrationID, deviceID: reg.DeviceID, groupID: reg.GroupID, individual: reg.Individual,
		thumbprint: reg.CredentialThumbprint, attType: reg.AttestationType, cred: ident.Credential}
	instance := ""
	if reg.Individual {
		ind, err := s.Enrollments.GetIndividual(ctx, reg.RegistrationID)
		if fault.KindOf(err) == fault.NotFound {
			return nil, false, fault.New(fault.Unauthenticated, fault.EnrollmentNotFound, "the device's individual enrollment was deleted")
		}
		if err != nil {
			return nil, false, err
		}
		if ind.Disabled {
			return nil, false, fault.New(fault.PermissionDenied, fault.EnrollmentDisabled, "the device's individual enrollment is disabled")
		}
		if ind.Thumbprint != "" && ind.Thumbprint != reg.CredentialThumbprint {
			return nil, false, fault.New(fault.Unauthenticated, fault.EnrollmentNotFound, "the individual enrollment is now for another credential")
		}
		out.alloc, out.settings, instance = ind.Allocation, ind.DeviceSettings, enrollmentInstance(false, ind.RegistrationID, ind.Created)
	} else {
		g, err := s.Enrollments.GetGroup(ctx, reg.GroupID)
		if fault.KindOf(err) == fault.NotFound {
			return nil, false, fault.New(fault.Unauthenticated, fault.EnrollmentNotFound, "the device's enrollment group %q was deleted", reg.GroupID)
		}
		if err != nil {
			return nil, false, err
		}
		if g.Disabled {
			return nil, false, fault.New(fault.PermissionDenied, fault.EnrollmentDisabled, "enrollment group %q is disabled", g.ID)
		}
		if reg.AttestationType == registry.TPM && len(g.EKAllowList) > 0 && !slices.Contains(g.EKAllowList, reg.CredentialThumbprint) {
			return nil, false, fault.New(fault.Unauthenticated, fault.TPMEKUnknown, "the group's EK allow-list no longer admits the device's TPM")
		}
		out.alloc, out.settings, instance = g.Allocation, g.DeviceSettings, enrollmentInstance(true, g.ID, g.Created)
	}
	if reg.Issued.Enrollment != "" && reg.Issued.Enrollment != instance {
		return nil, false, fault.New(fault.Unauthenticated, fault.EnrollmentNotFound, "the enrollment that admitted the device was deleted (a namesake was created since); register with the device's own credential")
	}
	grace := time.Duration(0)
	if pol, err := s.Issuer.Policy(ctx, out.settings.CredentialPolicy); err == nil {
		grace = pol.RenewalGrace
	}
	if now.After(leaf.NotAfter.Add(grace)) {
		return nil, false, fault.New(fault.Unauthenticated, fault.CertificateExpired, "the certificate expired at %s and the renewal grace has passed", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	out.renewal, out.instance = &renewal{serial: serial, ca: ca.Name}, instance
	return &out, false, nil
}

// enrollmentInstance names one enrollment for its life: a deleted and
// re-created one with the same ID is another.
func enrollmentInstance(group bool, id string, created time.Time) string {
	kind := "i:"
	if group {
		kind = "g:"
	}
	return kind + enrollment.Key(id) + "@" + strconv.FormatInt(created.UnixNano(), 36)
}
