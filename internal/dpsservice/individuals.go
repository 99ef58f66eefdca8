package dpsservice

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

// Individual enrollments: DPS's JSON to admin's use cases and back.

func (s *Service) writeIndividual(ctx context.Context, id string, in *IndividualEnrollment, etag string, mode writeMode) (*IndividualEnrollment, error) {
	if in.RegistrationID == "" {
		in.RegistrationID = id
	} else if id != "" && !strings.EqualFold(in.RegistrationID, id) {
		return nil, fault.Invalidf("registrationId %q is not the path's %q", in.RegistrationID, id)
	}
	if len(in.OptionalDeviceInformation) > 0 && !bytes.Equal(in.OptionalDeviceInformation, []byte("null")) {
		return nil, fault.Invalidf("optionalDeviceInformation is not supported")
	}
	if in.Attestation == nil {
		return nil, fault.Invalidf("attestation is required")
	}
	disabled, alloc, ds, err := s.settingsFromDPS(ctx, &in.enrollmentCommon)
	if err != nil {
		return nil, err
	}
	return createOrReplace(ctx, "enrollment", in.RegistrationID, etag, mode,
		func() (*enrollment.Individual, string, error) {
			cur, err := s.Admin.GetIndividual(ctx, in.RegistrationID)
			if err != nil {
				return nil, "", err
			}
			return cur, cur.Etag, nil
		},
		func() (*IndividualEnrollment, error) {
			e := &enrollment.Individual{RegistrationID: in.RegistrationID, DeviceID: in.DeviceID, Disabled: disabled, Allocation: alloc, DeviceSettings: ds}
			return s.createIndividual(ctx, e, in.Attestation)
		},
		func(cur *enrollment.Individual) (*IndividualEnrollment, error) {
			if err := s.sameIndividualAttestation(ctx, cur, in.Attestation); err != nil {
				return nil, err
			}
			cur.DeviceID, cur.Disabled, cur.Allocation, cur.DeviceSettings = in.DeviceID, disabled, alloc, ds
			upd, err := s.Admin.UpdateIndividual(ctx, cur)
			if err != nil {
				return nil, err
			}
			return s.individualToDPS(ctx, upd, true)
		})
}

func (s *Service) createIndividual(ctx context.Context, e *enrollment.Individual, att *AttestationMechanism) (*IndividualEnrollment, error) {
	switch att.Type {
	case "x509":
		x := att.X509
		if x == nil || x.ClientCertificates == nil || x.ClientCertificates.Primary == nil {
			return nil, fault.Invalidf("attestation.x509.clientCertificates.primary is required")
		}
		if x.SigningCertificates != nil || x.CAReferences != nil {
			return nil, fault.Invalidf("an individual enrollment takes clientCertificates, not signingCertificates or caReferences")
		}
		if x.ClientCertificates.Secondary != nil {
			return nil, fault.Invalidf("attestation.x509.clientCertificates.secondary is not supported; enroll the certificate that the device presents")
		}
		// The certificate, or (as DPS answers a GET, so that exported
		// enrollments import) only its SHA-256 thumbprint.
		p := x.ClientCertificates.Primary
		var text string
		switch {
		case p.Certificate != "":
			var err error
			if text, err = certificateText("attestation.x509.clientCertificates.primary.certificate", p.Certificate); err != nil {
				return nil, err
			}
		case p.Info != nil && p.Info.SHA256Thumbprint != "":
			e.Thumbprint = p.Info.SHA256Thumbprint
		default:
			return nil, fault.Invalidf("attestation.x509.clientCertificates.primary needs certificate or info.sha256Thumbprint")
		}
		var err error
		if e, err = s.Admin.CreateIndividual(ctx, e, text); err != nil {
			return nil, err
		}
		return s.individualToDPS(ctx, e, false)
	case "tpm":
		if att.TPM == nil || att.TPM.EndorsementKey == "" {
			return nil, fault.Invalidf("attestation.tpm.endorsementKey is required")
		}
		ek, err := base64.StdEncoding.DecodeString(att.TPM.EndorsementKey)
		if err != nil {
			return nil, fault.Invalidf("attestation.tpm.endorsementKey is not base64")
		}
		if e, err = s.Admin.CreateTPMIndividual(ctx, e, ek, ""); err != nil {
			return nil, err
		}
		return s.individualToDPS(ctx, e, false)
	case "symmetricKey":
		primary, secondary, err := decodeKeys(att.SymmetricKey)
		if err != nil {
			return nil, err
		}
		e, _, err := s.Admin.CreateSymmetricIndividual(ctx, e, primary, secondary)
		if err != nil {
			return nil, err
		}
		return s.individualToDPS(ctx, e, true)
	}
	return nil, fault.Invalidf("attestation.type %q is not one of x509, tpm, symmetricKey", att.Type)
}

// sameIndividualAttestation refuses an update that would change how the
// device proves itself: that is a new enrollment.
func (s *Service) sameIndividualAttestation(ctx context.Context, cur *enrollment.Individual, att *AttestationMechanism) error {
	immutable := fault.Invalidf("the attestation of enrollment %q cannot change; delete it and create it again", cur.RegistrationID)
	if att.Type != string(cur.Mechanism) {
		return immutable
	}
	switch cur.Mechanism {
	case enrollment.MechanismX509:
		if x := att.X509; x != nil && x.ClientCertificates != nil && x.ClientCertificates.Primary != nil && x.ClientCertificates.Primary.Certificate == "" &&
			x.ClientCertificates.Primary.Info != nil && x.ClientCertificates.Primary.Info.SHA256Thumbprint != "" &&
			!strings.EqualFold(x.ClientCertificates.Primary.Info.SHA256Thumbprint, cur.Thumbprint) {
			return immutable
		}
		if x := att.X509; x != nil && x.ClientCertificates != nil && x.ClientCertificates.Primary != nil && x.ClientCertificates.Primary.Certificate != "" {
			text, err := certificateText("attestation.x509.clientCertificates.primary.certificate", x.ClientCertificates.Primary.Certificate)
			if err != nil {
				return err
			}
			cert, err := enrollment.ParseCertificatePEM("attestation.x509.clientCertificates.primary.certificate", text)
			if err != nil {
				return err
			}
			if enrollment.Thumbprint(cert.Raw) != strings.ToLower(cur.Thumbprint) {
				return immutable
			}
		}
	case enrollment.MechanismTPM:
		if att.TPM != nil && att.TPM.EndorsementKey != "" {
			ek, err := base64.StdEncoding.DecodeString(att.TPM.EndorsementKey)
			if err != nil {
				return fault.Invalidf("attestation.tpm.endorsementKey is not base64")
			}
			if !bytes.Equal(ek, cur.EKPublic) {
				return immutable
			}
		}
	case enrollment.MechanismSymmetricKey:
		return sameKeys(att.SymmetricKey, func() (*secrets.SymmetricKeys, error) { return s.Admin.IndividualKeys(ctx, cur) })
	}
	return nil
}

func (s *Service) individualAttestation(ctx context.Context, e *enrollment.Individual, withKeys bool) (*AttestationMechanism, error) {
	m := &AttestationMechanism{Type: string(e.Mechanism)}
	switch e.Mechanism {
	case enrollment.MechanismX509:
		m.X509 = &X509Attestation{ClientCertificates: &X509Certificates{Primary: &X509CertificateWithInfo{Info: &X509CertificateInfo{SHA256Thumbprint: strings.ToUpper(e.Thumbprint)}}}}
	case enrollment.MechanismTPM:
		m.TPM = &TPMAttestation{EndorsementKey: base64.StdEncoding.EncodeToString(e.EKPublic)}
	case enrollment.MechanismSymmetricKey:
		var err error
		if m.SymmetricKey, err = shownKeys(withKeys, func() (*secrets.SymmetricKeys, error) { return s.Admin.IndividualKeys(ctx, e) }); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (s *Service) individualToDPS(ctx context.Context, e *enrollment.Individual, withKeys bool) (*IndividualEnrollment, error) {
	c, err := s.settingsToDPS(ctx, e.Disabled, e.Allocation, e.DeviceSettings, e.Meta)
	if err != nil {
		return nil, err
	}
	if c.Attestation, err = s.individualAttestation(ctx, e, withKeys); err != nil {
		return nil, err
	}
	return &IndividualEnrollment{RegistrationID: e.RegistrationID, DeviceID: e.DeviceID, enrollmentCommon: c}, nil
}
