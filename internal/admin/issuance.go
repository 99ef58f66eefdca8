package admin

import (
	"context"
	"strings"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/issuance"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// Issuing CAs, credential policies and revocations (ADR 22). Every change
// goes through mutate, as the other operator changes do.

// IssuingCAMode says how CreateIssuingCA makes the CA.
type IssuingCAMode string

// Issuing CA creation modes.
const (
	// GenerateRoot makes a key and a self-signed root inside Zerotouch.
	GenerateRoot IssuingCAMode = "generate"
	// GenerateIntermediate makes a key and a CSR for an offline root;
	// CompleteIssuingCA takes the signed certificate.
	GenerateIntermediate IssuingCAMode = "intermediate"
	// Import takes a certificate chain and its key.
	Import IssuingCAMode = "import"
)

// NewIssuingCA is what CreateIssuingCA takes.
type NewIssuingCA struct {
	Name       string
	Mode       IssuingCAMode
	CommonName string
	KeyType    issuance.CAKeyType
	// CertificatePEM and KeyPEM are for Import.
	CertificatePEM, KeyPEM string
}

func (s *Service) issuanceOn() error {
	if s.Issuance == nil || s.Secrets == nil {
		return fault.New(fault.FailedPrecondition, fault.FieldInvalid, "certificate issuance is not available (no data key)")
	}
	return nil
}

// CreateIssuingCA creates an issuing CA; its key is sealed under the data
// key and never leaves Zerotouch.
func (s *Service) CreateIssuingCA(ctx context.Context, in NewIssuingCA) (*issuance.CA, error) {
	if err := s.issuanceOn(); err != nil {
		return nil, err
	}
	now := s.Now()
	var ca *issuance.CA
	var err error
	switch in.Mode {
	case GenerateRoot, "":
		ca, err = issuance.NewRootCA(s.Secrets, in.Name, in.CommonName, in.KeyType, now)
	case GenerateIntermediate:
		ca, err = issuance.NewIntermediateCA(s.Secrets, in.Name, in.CommonName, in.KeyType, now)
	case Import:
		ca, err = issuance.ImportCA(s.Secrets, in.Name, in.CertificatePEM, in.KeyPEM, now)
	default:
		err = fault.Invalidf("mode %q is not one of generate, intermediate, import", in.Mode)
	}
	if err != nil {
		return nil, err
	}
	ca.Etag, err = mutate(ctx, s, change{action: "CreateIssuingCA", resource: ca.Name, summary: "mode=" + string(orMode(in.Mode))},
		func() (string, error) { return s.Issuance.CreateIssuingCA(ctx, ca) })
	if err != nil {
		return nil, err
	}
	return ca, nil
}

func orMode(m IssuingCAMode) IssuingCAMode {
	if m == "" {
		return GenerateRoot
	}
	return m
}

// CompleteIssuingCA takes the certificate an offline root signed for a
// pending intermediate's CSR.
func (s *Service) CompleteIssuingCA(ctx context.Context, name, etag, chainPEM string) (*issuance.CA, error) {
	return s.updateIssuingCA(ctx, name, etag, func(ca *issuance.CA) (string, error) {
		return "completed", ca.Complete(s.Secrets, chainPEM, s.Now())
	})
}

// SetIssuingCAEnabled disables an issuing CA (it signs nothing more; its
// CRL and OCSP answers stay published, and devices it issued can renew
// under another) or enables it again.
func (s *Service) SetIssuingCAEnabled(ctx context.Context, name, etag string, enabled bool) (*issuance.CA, error) {
	return s.updateIssuingCA(ctx, name, etag, func(ca *issuance.CA) (string, error) {
		switch {
		case ca.State == issuance.CAPending:
			return "", fault.New(fault.FailedPrecondition, fault.FieldInvalid, "issuing CA %q is waiting for its signed certificate", name)
		case enabled:
			ca.State = issuance.CAActive
		default:
			ca.State = issuance.CADisabled
		}
		ca.Updated = s.Now()
		return "state=" + string(ca.State), nil
	})
}

// updateIssuingCA reads the CA (its etag, when given, must be current),
// changes it and writes it back under its etag.
func (s *Service) updateIssuingCA(ctx context.Context, name, etag string, change func(*issuance.CA) (summary string, err error)) (*issuance.CA, error) {
	if err := s.issuanceOn(); err != nil {
		return nil, err
	}
	ca, err := s.Issuance.GetIssuingCA(ctx, name)
	if err != nil {
		return nil, err
	}
	if etag != "" && etag != ca.Etag {
		return nil, fault.EtagMismatchf("issuing CA %q was changed by someone else", name)
	}
	summary, err := change(ca)
	if err != nil {
		return nil, err
	}
	ca.Etag, err = mutate(ctx, s, changeOf("UpdateIssuingCA", name, ca.Etag, summary),
		func() (string, error) { return s.Issuance.UpdateIssuingCA(ctx, ca) })
	if err != nil {
		return nil, err
	}
	return ca, nil
}

func changeOf(action, resource, ifMatch, summary string) change {
	return change{action: action, resource: resource, ifMatch: ifMatch, summary: summary}
}

// GetIssuingCA reads an issuing CA.
func (s *Service) GetIssuingCA(ctx context.Context, name string) (*issuance.CA, error) {
	if err := s.issuanceOn(); err != nil {
		return nil, err
	}
	return s.Issuance.GetIssuingCA(ctx, name)
}

// ListIssuingCAs lists the issuing CAs.
func (s *Service) ListIssuingCAs(ctx context.Context) ([]*issuance.CA, error) {
	if err := s.issuanceOn(); err != nil {
		return nil, err
	}
	return s.Issuance.ListIssuingCAs(ctx)
}

// DeleteIssuingCA removes an issuing CA no policy names. Its certificates
// stop renewing; relying parties lose its CRL, so disable it instead
// while its certificates are still valid.
func (s *Service) DeleteIssuingCA(ctx context.Context, name, etag string) error {
	if err := s.issuanceOn(); err != nil {
		return err
	}
	pols, err := s.Issuance.ListPolicies(ctx)
	if err != nil {
		return err
	}
	for _, p := range pols {
		if p.IssuingCA == name {
			return fault.New(fault.FailedPrecondition, fault.ResourceInUse, "credential policy %q uses issuing CA %q", p.Name, name)
		}
	}
	return s.write(ctx, change{action: "DeleteIssuingCA", resource: name, ifMatch: etag}, func() error { return s.Issuance.DeleteIssuingCA(ctx, name, etag) })
}

func (s *Service) checkPolicy(ctx context.Context, p *issuance.Policy) error {
	p.Normalize()
	if err := p.Validate(); err != nil {
		return err
	}
	if _, err := s.Issuance.GetIssuingCA(ctx, p.IssuingCA); fault.KindOf(err) == fault.NotFound {
		return fault.New(fault.FailedPrecondition, fault.ResourceNotFound, "issuing CA %q does not exist", p.IssuingCA)
	} else if err != nil {
		return err
	}
	return nil
}

func policySummary(p *issuance.Policy) string {
	keys := make([]string, 0, len(p.KeyTypes))
	for _, k := range p.EffectiveKeyTypes() {
		keys = append(keys, string(k))
	}
	return "ca=" + p.IssuingCA + " keys=" + strings.Join(keys, ",") + " validity=" + p.Validity.String()
}

// CreatePolicy creates a credential policy on an existing issuing CA.
func (s *Service) CreatePolicy(ctx context.Context, p *issuance.Policy) (*issuance.Policy, error) {
	if err := s.issuanceOn(); err != nil {
		return nil, err
	}
	if err := s.checkPolicy(ctx, p); err != nil {
		return nil, err
	}
	p.Created, p.Updated = s.Now(), s.Now()
	var err error
	p.Etag, err = mutate(ctx, s, change{action: "CreateCredentialPolicy", resource: p.Name, summary: policySummary(p)},
		func() (string, error) { return s.Issuance.CreatePolicy(ctx, p) })
	if err != nil {
		return nil, err
	}
	return p, nil
}

// UpdatePolicy replaces a policy's settings (p.Etag, when set, must be
// current); devices get the new settings at their next issuance.
func (s *Service) UpdatePolicy(ctx context.Context, p *issuance.Policy) (*issuance.Policy, error) {
	if err := s.issuanceOn(); err != nil {
		return nil, err
	}
	cur, err := s.Issuance.GetPolicy(ctx, p.Name)
	if err != nil {
		return nil, err
	}
	if err := s.checkPolicy(ctx, p); err != nil {
		return nil, err
	}
	p.Created, p.Updated = cur.Created, s.Now()
	p.Etag, err = mutate(ctx, s, change{action: "UpdateCredentialPolicy", resource: p.Name, ifMatch: p.Etag, summary: policySummary(p)},
		func() (string, error) { return s.Issuance.UpdatePolicy(ctx, p) })
	if err != nil {
		return nil, err
	}
	return p, nil
}

// GetPolicy reads a credential policy.
func (s *Service) GetPolicy(ctx context.Context, name string) (*issuance.Policy, error) {
	if err := s.issuanceOn(); err != nil {
		return nil, err
	}
	return s.Issuance.GetPolicy(ctx, name)
}

// ListPolicies lists the credential policies.
func (s *Service) ListPolicies(ctx context.Context) ([]*issuance.Policy, error) {
	if err := s.issuanceOn(); err != nil {
		return nil, err
	}
	return s.Issuance.ListPolicies(ctx)
}

// DeletePolicy removes a credential policy. Enrollments that name it
// issue nothing until it exists again (their devices' CSRs are refused
// with CREDENTIAL_POLICY_MISSING); certificates already issued stay valid.
func (s *Service) DeletePolicy(ctx context.Context, name, etag string) error {
	if err := s.issuanceOn(); err != nil {
		return err
	}
	return s.write(ctx, change{action: "DeleteCredentialPolicy", resource: name, ifMatch: etag}, func() error { return s.Issuance.DeletePolicy(ctx, name, etag) })
}

// checkCredentialPolicy refuses an enrollment naming a policy that does
// not exist.
func (s *Service) checkCredentialPolicy(ctx context.Context, name string) error {
	if name == "" {
		return nil
	}
	if err := s.issuanceOn(); err != nil {
		return err
	}
	if _, err := s.Issuance.GetPolicy(ctx, name); fault.KindOf(err) == fault.NotFound {
		return fault.New(fault.FailedPrecondition, fault.CredentialPolicyMissing, "credential policy %q does not exist", name)
	} else if err != nil {
		return err
	}
	return nil
}

// Revoke is an operator's revocation request: a serial of an issuing CA,
// or every certificate a registration holds.
type Revoke struct {
	IssuingCA, Serial string
	RegistrationID    string
	// Reason is an RFC 5280 reason code (0 unspecified, 1 keyCompromise,
	// 4 superseded, 5 cessationOfOperation).
	Reason int
}

// RevokeCertificates revokes now and returns what it revoked.
func (s *Service) RevokeCertificates(ctx context.Context, in Revoke) ([]*issuance.Revocation, error) {
	if err := s.issuanceOn(); err != nil {
		return nil, err
	}
	switch in.Reason {
	case issuance.ReasonUnspecified, issuance.ReasonKeyCompromise, 3, issuance.ReasonSuperseded, issuance.ReasonCessation, 9:
	default:
		return nil, fault.Invalidf("reason %d is not one of 0 (unspecified), 1 (keyCompromise), 3 (affiliationChanged), 4 (superseded), 5 (cessationOfOperation), 9 (privilegeWithdrawn)", in.Reason)
	}
	now := s.Now()
	var revs []*issuance.Revocation
	switch {
	case in.RegistrationID != "" && in.Serial == "":
		reg, err := s.Store.GetRegistration(ctx, in.RegistrationID)
		if err != nil {
			return nil, err
		}
		for _, c := range []*registry.IssuedCertificate{reg.Issued, reg.Superseded} {
			if c != nil {
				revs = append(revs, &issuance.Revocation{IssuingCA: c.IssuingCA, Serial: c.Serial, RegistrationID: reg.RegistrationID, RevokedAt: now, Reason: in.Reason, NotAfter: c.NotAfter})
			}
		}
		if len(revs) == 0 {
			return nil, fault.New(fault.FailedPrecondition, fault.ResourceNotFound, "registration %q holds no issued certificate", in.RegistrationID)
		}
	case in.Serial != "" && in.IssuingCA != "":
		n, err := issuance.ParseSerial(in.Serial)
		if err != nil {
			return nil, err
		}
		if _, err := s.Issuance.GetIssuingCA(ctx, in.IssuingCA); err != nil {
			return nil, err
		}
		revs = append(revs, &issuance.Revocation{IssuingCA: in.IssuingCA, Serial: issuance.SerialHex(n), RegistrationID: in.RegistrationID, RevokedAt: now,
			Reason: in.Reason, NotAfter: now.Add(issuance.MaxValidity)})
	default:
		return nil, fault.Invalidf("name a registration, or an issuing CA and a serial")
	}
	for _, r := range revs {
		err := s.write(ctx, change{action: "RevokeCertificate", resource: r.IssuingCA + "/" + r.Serial, summary: "registration=" + r.RegistrationID},
			func() error { _, err := s.Issuance.Revoke(ctx, r); return err })
		if err != nil {
			return nil, err
		}
	}
	if in.Serial == "" {
		// The registration lets go of them too, in its own write: it renews
		// them no more even once their revocations are pruned, and its hub
		// gets an updated identity without them.
		var err error
		if revs, err = s.dropIssued(ctx, in.RegistrationID, in.Reason, revs); err != nil {
			return nil, err
		}
	}
	return revs, nil
}

// dropIssued removes the revoked certificates from the registration and
// its identity. A certificate the device renewed meanwhile is revoked too
// (the operator revoked what the registration holds), and the write is
// tried again.
func (s *Service) dropIssued(ctx context.Context, regID string, reason int, revs []*issuance.Revocation) ([]*issuance.Revocation, error) {
	revoked := map[string]bool{}
	for _, r := range revs {
		revoked[r.IssuingCA+"/"+r.Serial] = true
	}
	for range 5 {
		reg, err := s.Store.GetRegistration(ctx, regID)
		if err != nil {
			return revs, err
		}
		if reg.Issued == nil && reg.Superseded == nil {
			return revs, nil
		}
		now := s.Now()
		for _, c := range []*registry.IssuedCertificate{reg.Issued, reg.Superseded} {
			if c == nil || revoked[c.IssuingCA+"/"+c.Serial] {
				continue
			}
			r := &issuance.Revocation{IssuingCA: c.IssuingCA, Serial: c.Serial, RegistrationID: reg.RegistrationID, RevokedAt: now, Reason: reason, NotAfter: c.NotAfter}
			err := s.write(ctx, change{action: "RevokeCertificate", resource: r.IssuingCA + "/" + r.Serial, summary: "registration=" + r.RegistrationID},
				func() error { _, err := s.Issuance.Revoke(ctx, r); return err })
			if err != nil {
				return revs, err
			}
			revoked[c.IssuingCA+"/"+c.Serial], revs = true, append(revs, r)
		}
		id, err := s.Store.GetIdentity(ctx, reg.DeviceID)
		if err != nil {
			return revs, err
		}
		reg.Issued, reg.Superseded, id.Credential.Issued = nil, nil, nil
		reg.Updated, id.Version, id.Updated = now, registry.NextVersion(id.Version, now), now
		_, err = mutate(ctx, s, change{action: "UpdateRegistration", resource: regID, summary: "issued certificates revoked"},
			func() (string, error) { return s.Store.UpdateRegistration(ctx, reg, id) })
		if fault.KindOf(err) != fault.Conflict {
			return revs, err
		}
	}
	return revs, fault.New(fault.Unavailable, fault.StoreUnavailable, "registration %q kept changing; its certificates are revoked, retry to drop them from it", regID)
}

// ListRevocations pages through an issuing CA's revocations in serial
// order; the token is the last serial of the previous page.
func (s *Service) ListRevocations(ctx context.Context, ca, token string, limit int) ([]*issuance.Revocation, string, error) {
	if err := s.issuanceOn(); err != nil {
		return nil, "", err
	}
	if token != "" {
		n, err := issuance.ParseSerial(token)
		if err != nil {
			return nil, "", fault.Invalidf("page_token is not one this list gave")
		}
		token = issuance.SerialHex(n)
	}
	if _, err := s.Issuance.GetIssuingCA(ctx, ca); err != nil {
		return nil, "", err
	}
	revs, err := s.Issuance.PageRevocations(ctx, ca, token, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(revs) > limit {
		revs, next = revs[:limit], revs[limit-1].Serial
	}
	return revs, next, nil
}

// revokeOnDisable revokes a registration's issued certificates when the
// policy each was issued under says so (RevokeOnDisable), after the
// registration was deleted or disabled. A failure is logged: the
// registration no longer renews them anyway (disabled or gone).
func (s *Service) revokeOnDisable(ctx context.Context, reg *registry.Registration) {
	if s.Issuance == nil || reg == nil {
		return
	}
	now := s.Now()
	for _, c := range []*registry.IssuedCertificate{reg.Issued, reg.Superseded} {
		if c == nil || c.Policy == "" {
			continue
		}
		pol, err := s.Issuance.GetPolicy(ctx, c.Policy)
		if fault.KindOf(err) == fault.NotFound {
			continue
		}
		if err != nil {
			if s.Log != nil {
				s.Log.Error("revoke on disable: reading the credential policy failed", "registration_id", reg.RegistrationID, "policy", c.Policy, "err", err)
			}
			continue
		}
		if !pol.RevokeOnDisable {
			continue
		}
		_ = s.write(ctx, change{action: "RevokeCertificate", resource: c.IssuingCA + "/" + c.Serial, summary: "registration=" + reg.RegistrationID + " (disabled or deleted)"},
			func() error {
				_, err := s.Issuance.Revoke(context.WithoutCancel(ctx), &issuance.Revocation{IssuingCA: c.IssuingCA, Serial: c.Serial, RegistrationID: reg.RegistrationID,
					RevokedAt: now, Reason: issuance.ReasonCessation, NotAfter: c.NotAfter})
				return err
			})
	}
}
