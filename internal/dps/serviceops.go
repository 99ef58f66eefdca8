package dps

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/apierr"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

// writeMode is how a write treats an existing or absent enrollment.
type writeMode int

const (
	upsert     writeMode = iota // PUT: create or replace
	createOnly                  // bulk "create"
	updateOnly                  // bulk "update" and "updateIfMatchETag"
)

// maxWriteAttempts bounds retries of an unconditional replace that raced
// another writer.
const maxWriteAttempts = 3

// createOrReplace is DPS's PUT of one resource: create it when absent
// (unless the mode only updates, or If-Match names an etag: then 404/412);
// otherwise check If-Match and replace. An unconditional replace that
// raced another writer reads again; a conditional one reports the 412.
func createOrReplace[D, R any](ctx context.Context, what, id, etag string, mode writeMode,
	get func() (D, string, error), create func() (R, error), update func(D) (R, error)) (R, error) {
	var zero R
	for range maxWriteAttempts {
		cur, curEtag, err := get()
		switch {
		case errors.Is(err, fault.ErrNotFound):
			if mode == updateOnly {
				return zero, err
			}
			if etag != "" && etag != "*" {
				return zero, fault.New(fault.Conflict, fault.EtagMismatch, "%s %q does not exist (If-Match was given)", what, id)
			}
			return create()
		case err != nil:
			return zero, err
		}
		if mode == createOnly {
			return zero, fault.New(fault.AlreadyExists, fault.ResourceExists, "%s %q already exists", what, id)
		}
		if err := matchEtag(etag, curEtag, what, id); err != nil {
			return zero, err
		}
		out, err := update(cur)
		if fault.KindOf(err) == fault.Conflict && (etag == "" || etag == "*") {
			continue // changed between our read and write: read again
		}
		return out, err
	}
	return zero, fault.New(fault.Unavailable, fault.StoreUnavailable, "too many concurrent changes to %s %q; retry", what, id)
}

func (s *Service) put(req *svcRequest) error {
	ctx, etag := req.r.Context(), ifMatch(req.r)
	if req.kind == "enrollments" {
		var in IndividualEnrollment
		if err := readJSON(req.r, maxServiceBody, "IndividualEnrollment", &in); err != nil {
			return err
		}
		out, err := s.writeIndividual(ctx, req.id, &in, etag, upsert)
		if err != nil {
			return err
		}
		s.write(req.w, http.StatusOK, out)
		return nil
	}
	var in EnrollmentGroup
	if err := readJSON(req.r, maxServiceBody, "EnrollmentGroup", &in); err != nil {
		return err
	}
	out, err := s.writeGroup(ctx, req.id, &in, etag, upsert)
	if err != nil {
		return err
	}
	s.write(req.w, http.StatusOK, out)
	return nil
}

// ---- individual enrollments ----

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
			cur, err := s.Store.GetIndividual(ctx, in.RegistrationID)
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
			if err := s.sameIndividualAttestation(cur, in.Attestation); err != nil {
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
func (s *Service) sameIndividualAttestation(cur *enrollment.Individual, att *AttestationMechanism) error {
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
		return s.sameKeys(att.SymmetricKey, cur.SealedKeys, secrets.IndividualAAD(cur.RegistrationID))
	}
	return nil
}

func (s *Service) individualAttestation(e *enrollment.Individual, withKeys bool) (*AttestationMechanism, error) {
	m := &AttestationMechanism{Type: string(e.Mechanism)}
	switch e.Mechanism {
	case enrollment.MechanismX509:
		m.X509 = &X509Attestation{ClientCertificates: &X509Certificates{Primary: &X509CertificateWithInfo{Info: &X509CertificateInfo{SHA256Thumbprint: strings.ToUpper(e.Thumbprint)}}}}
	case enrollment.MechanismTPM:
		m.TPM = &TPMAttestation{EndorsementKey: base64.StdEncoding.EncodeToString(e.EKPublic)}
	case enrollment.MechanismSymmetricKey:
		var err error
		if m.SymmetricKey, err = s.shownKeys(withKeys, e.SealedKeys, secrets.IndividualAAD(e.RegistrationID)); err != nil {
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
	if c.Attestation, err = s.individualAttestation(e, withKeys); err != nil {
		return nil, err
	}
	return &IndividualEnrollment{RegistrationID: e.RegistrationID, DeviceID: e.DeviceID, enrollmentCommon: c}, nil
}

// ---- enrollment groups ----

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
			cur, err := s.Store.GetGroup(ctx, in.EnrollmentGroupID)
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
	ca, err := s.Store.FindCAByThumbprint(ctx, thumb)
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
		return s.sameKeys(att.SymmetricKey, cur.SealedKeys, secrets.GroupAAD(cur.ID))
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

func (s *Service) groupAttestation(g *enrollment.Group, withKeys bool) (*AttestationMechanism, error) {
	m := &AttestationMechanism{Type: string(g.EffectiveMechanism())}
	switch g.EffectiveMechanism() {
	case enrollment.MechanismX509, enrollment.MechanismTPM:
		// A TPM group is keyed on its vendor CA: shown as a CA reference.
		m.X509 = &X509Attestation{CAReferences: &X509CAReferences{Primary: g.CAName}}
	case enrollment.MechanismSymmetricKey:
		var err error
		if m.SymmetricKey, err = s.shownKeys(withKeys, g.SealedKeys, secrets.GroupAAD(g.ID)); err != nil {
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
	if c.Attestation, err = s.groupAttestation(g, withKeys); err != nil {
		return nil, err
	}
	return &EnrollmentGroup{EnrollmentGroupID: g.ID, enrollmentCommon: c}, nil
}

// ---- get, delete, attestation mechanism, query ----

func (s *Service) get(req *svcRequest) error {
	ctx := req.r.Context()
	if req.kind == "enrollments" {
		e, err := s.Store.GetIndividual(ctx, req.id)
		if err != nil {
			return err
		}
		out, err := s.individualToDPS(ctx, e, false)
		if err != nil {
			return err
		}
		if reg, err := s.Store.GetRegistration(ctx, e.RegistrationID); err == nil && reg.Individual {
			out.RegistrationState = toRegistrationState(reg)
		} else if err != nil && !errors.Is(err, fault.ErrNotFound) {
			return err
		}
		s.write(req.w, http.StatusOK, out)
		return nil
	}
	g, err := s.Store.GetGroup(ctx, req.id)
	if err != nil {
		return err
	}
	out, err := s.groupToDPS(ctx, g, false)
	if err != nil {
		return err
	}
	s.write(req.w, http.StatusOK, out)
	return nil
}

func (s *Service) delete(req *svcRequest) error {
	ctx, etag := req.r.Context(), ifMatch(req.r)
	if etag == "*" {
		etag = ""
	}
	var err error
	if req.kind == "enrollments" {
		err = s.Admin.DeleteIndividual(ctx, req.id, etag)
	} else {
		err = s.Admin.DeleteGroup(ctx, req.id, etag)
	}
	if err != nil {
		return err
	}
	req.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) attestationMechanism(req *svcRequest) error {
	ctx := req.r.Context()
	var m *AttestationMechanism
	if req.kind == "enrollments" {
		e, err := s.Store.GetIndividual(ctx, req.id)
		if err != nil {
			return err
		}
		if m, err = s.individualAttestation(e, true); err != nil {
			return err
		}
	} else {
		g, err := s.Store.GetGroup(ctx, req.id)
		if err != nil {
			return err
		}
		if m, err = s.groupAttestation(g, true); err != nil {
			return err
		}
	}
	s.write(req.w, http.StatusOK, m)
	return nil
}

func (s *Service) queryEnrollments(req *svcRequest) error {
	ctx := req.r.Context()
	token, limit, err := pageOf(req.r)
	if err != nil {
		return err
	}
	if req.kind == "enrollments" {
		es, next, err := s.Store.ListIndividuals(ctx, enrollment.Page{Token: token, Limit: limit})
		if err != nil {
			return err
		}
		out := make([]*IndividualEnrollment, 0, len(es))
		for _, e := range es {
			d, err := s.individualToDPS(ctx, e, false)
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		s.writePage(req, out, next, "Enrollment", limit)
		return nil
	}
	gs, next, err := s.Store.ListGroups(ctx, enrollment.Page{Token: token, Limit: limit})
	if err != nil {
		return err
	}
	out := make([]*EnrollmentGroup, 0, len(gs))
	for _, g := range gs {
		d, err := s.groupToDPS(ctx, g, false)
		if err != nil {
			return err
		}
		out = append(out, d)
	}
	s.writePage(req, out, next, "EnrollmentGroup", limit)
	return nil
}

// ---- bulk ----

func (s *Service) bulk(req *svcRequest) error {
	ctx := req.r.Context()
	var op BulkOperation
	if err := readJSON(req.r, maxBulkBody, "BulkEnrollmentOperation", &op); err != nil {
		return err
	}
	mode := map[string]writeMode{"create": createOnly, "update": updateOnly, "updateIfMatchETag": updateOnly, "delete": -1}
	m, ok := mode[op.Mode]
	if !ok {
		return fault.Invalidf("mode %q is not one of create, update, updateIfMatchETag, delete", op.Mode)
	}
	if len(op.Enrollments) == 0 || len(op.Enrollments) > MaxBulk {
		return fault.Invalidf("a bulk operation holds 1-%d enrollments, not %d", MaxBulk, len(op.Enrollments))
	}
	errs := make([]*BulkError, len(op.Enrollments))
	admin.Parallel(len(op.Enrollments), func(i int) { errs[i] = s.bulkItem(ctx, req, op.Enrollments[i], op.Mode, m) })
	out := BulkResult{IsSuccessful: true, Errors: []BulkError{}}
	for _, e := range errs {
		if e != nil {
			out.IsSuccessful = false
			out.Errors = append(out.Errors, *e)
		}
	}
	s.write(req.w, http.StatusOK, out)
	return nil
}

// bulkItem runs one item of a bulk operation and returns its error, if any.
func (s *Service) bulkItem(ctx context.Context, req *svcRequest, raw json.RawMessage, mode string, m writeMode) *BulkError {
	var id string
	var err error
	if req.kind == "enrollments" {
		var in IndividualEnrollment
		if err = decodeStrict(raw, "IndividualEnrollment", &in); err == nil {
			id = in.RegistrationID
			err = s.bulkIndividual(ctx, &in, mode, m)
		}
	} else {
		var in EnrollmentGroup
		if err = decodeStrict(raw, "EnrollmentGroup", &in); err == nil {
			id = in.EnrollmentGroupID
			err = s.bulkGroup(ctx, &in, mode, m)
		}
	}
	if err == nil {
		return nil
	}
	a := apierr.Classify(ctx, s.Log, req.r.Header.Get("X-Request-Id"), err, apierr.Operator)
	be := &BulkError{ErrorCode: a.DPSErrorCode, ErrorStatus: string(a.Reason) + ": " + a.Message}
	if req.kind == "enrollments" {
		be.RegistrationID = id
	} else {
		be.EnrollmentGroupID = id
	}
	return be
}

func (s *Service) bulkIndividual(ctx context.Context, in *IndividualEnrollment, mode string, m writeMode) error {
	if in.RegistrationID == "" {
		return fault.New(fault.InvalidArgument, fault.RegistrationIDInvalid, "registrationId is required")
	}
	etag := ""
	if mode == "updateIfMatchETag" || mode == "delete" {
		etag = unquoteEtag(in.Etag)
	}
	if mode == "updateIfMatchETag" && etag == "" {
		return fault.Invalidf("mode updateIfMatchETag needs each enrollment's etag")
	}
	if mode == "delete" {
		return s.Admin.DeleteIndividual(ctx, in.RegistrationID, strings.TrimPrefix(etag, "*"))
	}
	_, err := s.writeIndividual(ctx, "", in, etag, m)
	return err
}

func (s *Service) bulkGroup(ctx context.Context, in *EnrollmentGroup, mode string, m writeMode) error {
	if in.EnrollmentGroupID == "" {
		return fault.Invalidf("enrollmentGroupId is required")
	}
	etag := ""
	if mode == "updateIfMatchETag" || mode == "delete" {
		etag = unquoteEtag(in.Etag)
	}
	if mode == "updateIfMatchETag" && etag == "" {
		return fault.Invalidf("mode updateIfMatchETag needs each enrollment group's etag")
	}
	if mode == "delete" {
		return s.Admin.DeleteGroup(ctx, in.EnrollmentGroupID, strings.TrimPrefix(etag, "*"))
	}
	_, err := s.writeGroup(ctx, "", in, etag, m)
	return err
}

// ---- registration states ----

func (s *Service) getRegistration(req *svcRequest) error {
	reg, err := s.Store.GetRegistration(req.r.Context(), req.id)
	if err != nil {
		return err
	}
	s.write(req.w, http.StatusOK, toRegistrationState(reg))
	return nil
}

func (s *Service) deleteRegistration(req *svcRequest) error {
	etag := ifMatch(req.r)
	if etag == "*" {
		etag = ""
	}
	if err := s.Store.DeleteRegistration(req.r.Context(), req.id, etag); err != nil {
		return err
	}
	req.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) queryRegistrations(req *svcRequest) error {
	ctx := req.r.Context()
	token, limit, err := pageOf(req.r)
	if err != nil {
		return err
	}
	if _, err := s.Store.GetGroup(ctx, req.id); err != nil {
		return err
	}
	regs, next, err := s.Store.ListRegistrations(ctx, registry.Filter{GroupID: req.id}, token, limit)
	if err != nil {
		return err
	}
	out := make([]*DeviceRegistrationState, 0, len(regs))
	for _, r := range regs {
		out = append(out, toRegistrationState(r))
	}
	s.writePage(req, out, next, "DeviceRegistration", limit)
	return nil
}

// decodeKeys reads the keys a caller gave (either may be absent: it is
// then generated).
func decodeKeys(k *SymmetricKeyAttestation) (primary, secondary []byte, err error) {
	if k == nil {
		return nil, nil, nil
	}
	if primary, err = decodeKey("attestation.symmetricKey.primaryKey", k.PrimaryKey); err != nil {
		return nil, nil, err
	}
	secondary, err = decodeKey("attestation.symmetricKey.secondaryKey", k.SecondaryKey)
	return primary, secondary, err
}

// shownKeys is the symmetricKey attestation of an answer: the keys only
// where the caller may see them.
func (s *Service) shownKeys(withKeys bool, sealed []byte, aad string) (*SymmetricKeyAttestation, error) {
	if !withKeys {
		return &SymmetricKeyAttestation{}, nil
	}
	return s.keysOf(sealed, aad)
}
