package dpsservice

import (
	"context"
	"errors"
	"strings"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

// Enrollment groups: DPS's JSON to admin's use cases and back.

func (s *Service) writeGroup(ctx context.Context, id string, in *EnrollmentGroup, etag string, mode writeMode) (*EnrollmentGroup, error) {
	if in.EnrollmentGroupID == "" {
		in.EnrollmentGroupID = id
	} else if id != "" && in.EnrollmentGroupID != id {
		return nil, fault.Invalidf("enrollmentGroupId %q is not the path's %q", in.EnrollmentGroupID, id)
	}
	if in.Attestation == nil {
		return nil, fault.Invalidf("attestation is required")
	}
	disabled, alloc, ds, err := s.settingsFromDPS(ctx, &in.enrollmentCommon)
	if err != nil {
		return nil, err
	}
	return createOrReplace(ctx, "enrollment group", in.EnrollmentGroupID, etag, mode,
		func() (*enrollment.Group, string, error) {
			cur, err := s.Admin.GetGroup(ctx, in.EnrollmentGroupID)
			if err != nil {
				return nil, "", err
			}
			return cur, cur.Etag, nil
		},
		func() (*EnrollmentGroup, error) {
			g := &enrollment.Group{ID: in.EnrollmentGroupID, Disabled: disabled, Allocation: alloc, DeviceSettings: ds}
			return s.createGroup(ctx, g, in.Attestation)
		},
		func(cur *enrollment.Group) (*EnrollmentGroup, error) {
			if err := s.sameGroupAttestation(ctx, cur, in.Attestation); err != nil {
				return nil, err
			}
			cur.Disabled, cur.Allocation, cur.DeviceSettings = disabled, alloc, ds
			upd, err := s.Admin.UpdateGroup(ctx, cur)
			if err != nil {
				return nil, err
			}
			return s.groupToDPS(ctx, upd, true)
		})
}

// groupCA resolves an X.509 group's CA: by caReferences.primary (a CA
// uploaded and verified through the native API), or by the certificate in
// signingCertificates.primary, which must be such a CA too.
func (s *Service) groupCA(ctx context.Context, x *X509Attestation) (string, error) {
	if x == nil || x.ClientCertificates != nil {
		return "", fault.Invalidf("an X.509 enrollment group takes attestation.x509.caReferences or signingCertificates")
	}
	if refs := x.CAReferences; refs != nil {
		if refs.Secondary != "" || x.SigningCertificates != nil {
			return "", fault.Invalidf("an enrollment group names one CA: caReferences.primary or signingCertificates.primary, not more")
		}
		if refs.Primary == "" {
			return "", fault.Invalidf("attestation.x509.caReferences.primary is required")
		}
		return refs.Primary, nil
	}
	sc := x.SigningCertificates
	if sc == nil || sc.Primary == nil {
		return "", fault.Invalidf("attestation.x509.caReferences.primary or signingCertificates.primary is required")
	}
	if sc.Secondary != nil {
		return "", fault.Invalidf("attestation.x509.signingCertificates.secondary is not supported")
	}
	// The certificate, or only its SHA-256 thumbprint (as a DPS GET shows it).
	var thumb string
	switch {
	case sc.Primary.Certificate != "":
		text, err := certificateText("attestation.x509.signingCertificates.primary.certificate", sc.Primary.Certificate)
		if err != nil {
			return "", err
		}
		cert, err := enrollment.ParseCertificatePEM("attestation.x509.signingCertificates.primary.certificate", text)
		if err != nil {
			return "", err
		}
		thumb = enrollment.Thumbprint(cert.Raw)
	case sc.Primary.Info != nil && enrollment.ValidThumbprint(sc.Primary.Info.SHA256Thumbprint):
		thumb = strings.ToLower(sc.Primary.Info.SHA256Thumbprint)
	default:
		return "", fault.Invalidf("attestation.x509.signingCertificates.primary needs certificate or info.sha256Thumbprint (64 hex digits)")
	}
	ca, err := s.Admin.FindCAByThumbprint(ctx, thumb)
	if errors.Is(err, fault.ErrNotFound) {
		return "", fault.New(fault.FailedPrecondition, fault.CANotVerified,
			"the signing certificate is not an uploaded CA; upload it and prove possession of its key first (zerotouch ca create / ca verify)")
	}
	if err != nil {
		return "", err
	}
	return ca.Name, nil
}

func (s *Service) createGroup(ctx context.Context, g *enrollment.Group, att *AttestationMechanism) (*EnrollmentGroup, error) {
	switch att.Type {
	case "x509":
		name, err := s.groupCA(ctx, att.X509)
		if err != nil {
			return nil, err
		}
		g.CAName, g.Mechanism = name, enrollment.MechanismX509
		if g, err = s.Admin.CreateGroup(ctx, g); err != nil {
			return nil, err
		}
		return s.groupToDPS(ctx, g, false)
	case "symmetricKey":
		primary, secondary, err := decodeKeys(att.SymmetricKey)
		if err != nil {
			return nil, err
		}
		g, _, err := s.Admin.CreateSymmetricGroup(ctx, g, primary, secondary)
		if err != nil {
			return nil, err
		}
		return s.groupToDPS(ctx, g, true)
	case "tpm":
		return nil, fault.Invalidf("DPS has no TPM enrollment groups; create Zerotouch TPM groups (by EK certificate) through the native API")
	}
	return nil, fault.Invalidf("attestation.type %q is not one of x509, symmetricKey", att.Type)
}

func (s *Service) sameGroupAttestation(ctx context.Context, cur *enrollment.Group, att *AttestationMechanism) error {
	immutable := fault.Invalidf("the attestation of enrollment group %q cannot change; delete it and create it again", cur.ID)
	mech := cur.EffectiveMechanism()
	switch {
	case mech == enrollment.MechanismTPM && att.Type == "tpm":
		return nil // a native TPM group: only settings change here
	case att.Type != string(mech):
		return immutable
	case mech == enrollment.MechanismSymmetricKey:
		return sameKeys(att.SymmetricKey, func() (*secrets.SymmetricKeys, error) { return s.Admin.GroupKeys(ctx, cur) })
	}
	if att.X509 == nil || att.X509.CAReferences == nil && att.X509.SigningCertificates == nil {
		return nil
	}
	name, err := s.groupCA(ctx, att.X509)
	if err != nil {
		return err
	}
	if name != cur.CAName {
		return immutable
	}
	return nil
}

func (s *Service) groupAttestation(ctx context.Context, g *enrollment.Group, withKeys bool) (*AttestationMechanism, error) {
	m := &AttestationMechanism{Type: string(g.EffectiveMechanism())}
	switch g.EffectiveMechanism() {
	case enrollment.MechanismX509, enrollment.MechanismTPM:
		// A TPM group is keyed on its vendor CA: shown as a CA reference.
		m.X509 = &X509Attestation{CAReferences: &X509CAReferences{Primary: g.CAName}}
	case enrollment.MechanismSymmetricKey:
		var err error
		if m.SymmetricKey, err = shownKeys(withKeys, func() (*secrets.SymmetricKeys, error) { return s.Admin.GroupKeys(ctx, g) }); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (s *Service) groupToDPS(ctx context.Context, g *enrollment.Group, withKeys bool) (*EnrollmentGroup, error) {
	c, err := s.settingsToDPS(ctx, g.Disabled, g.Allocation, g.DeviceSettings, g.Meta)
	if err != nil {
		return nil, err
	}
	if c.Attestation, err = s.groupAttestation(ctx, g, withKeys); err != nil {
		return nil, err
	}
	return &EnrollmentGroup{EnrollmentGroupID: g.ID, enrollmentCommon: c}, nil
}
