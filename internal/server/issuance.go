package server

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/issuance"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// issuanceService implements IssuanceService (ADR 22).
type issuanceService struct {
	pb.UnsafeIssuanceServiceServer
	base
	issuer *issuance.Authority
}

var caStates = map[issuance.CAState]pb.IssuingCaState{
	issuance.CAActive: pb.IssuingCaState_ISSUING_CA_STATE_ACTIVE, issuance.CAPending: pb.IssuingCaState_ISSUING_CA_STATE_PENDING,
	issuance.CADisabled: pb.IssuingCaState_ISSUING_CA_STATE_DISABLED,
}

func (s *issuanceService) caToPB(ca *issuance.CA) *pb.IssuingCa {
	out := &pb.IssuingCa{Name: ca.Name, State: caStates[ca.State], CreateTime: ts(ca.Created), UpdateTime: ts(ca.Updated), Etag: ca.Etag}
	if len(ca.CertDER) > 0 {
		out.CertificateChainPem = ca.ChainPEM()
		if c, err := x509.ParseCertificate(ca.CertDER); err == nil {
			out.Subject, out.NotAfter = c.Subject.String(), ts(c.NotAfter)
		}
	}
	if len(ca.CSRDER) > 0 {
		out.CsrPem = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: ca.CSRDER}))
	}
	if s.issuer != nil {
		u := s.issuer.URLs(ca.Name)
		out.CrlUrl, out.OcspUrl = u.CRL, u.OCSP
	}
	return out
}

// CreateIssuingCa implements IssuanceService.
func (s *issuanceService) CreateIssuingCa(ctx context.Context, req *pb.CreateIssuingCaRequest) (*pb.IssuingCa, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	in := admin.NewIssuingCA{Name: req.GetName(), CommonName: req.GetCommonName(), KeyType: issuance.CAKeyType(req.GetKeyType()),
		CertificatePEM: req.GetCertificateChainPem(), KeyPEM: req.GetPrivateKeyPem()}
	switch req.GetMode() {
	case pb.IssuingCaMode_ISSUING_CA_MODE_UNSPECIFIED, pb.IssuingCaMode_ISSUING_CA_MODE_GENERATE:
		in.Mode = admin.GenerateRoot
	case pb.IssuingCaMode_ISSUING_CA_MODE_INTERMEDIATE:
		in.Mode = admin.GenerateIntermediate
	case pb.IssuingCaMode_ISSUING_CA_MODE_IMPORT:
		in.Mode = admin.Import
	default:
		return nil, s.fail(ctx, fault.Invalidf("mode %d is not a known mode", req.GetMode()))
	}
	if in.Mode != admin.Import && (in.CertificatePEM != "" || in.KeyPEM != "") {
		return nil, s.fail(ctx, fault.Invalidf("certificate_chain_pem and private_key_pem are for mode IMPORT only"))
	}
	ca, err := s.admin.CreateIssuingCA(ctx, in)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return s.caToPB(ca), nil
}

// GetIssuingCa implements IssuanceService.
func (s *issuanceService) GetIssuingCa(ctx context.Context, req *pb.GetIssuingCaRequest) (*pb.IssuingCa, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	ca, err := s.admin.GetIssuingCA(ctx, req.GetName())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return s.caToPB(ca), nil
}

// ListIssuingCas implements IssuanceService.
func (s *issuanceService) ListIssuingCas(ctx context.Context, _ *pb.ListIssuingCasRequest) (*pb.ListIssuingCasResponse, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	cas, err := s.admin.ListIssuingCAs(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListIssuingCasResponse{}
	for _, ca := range cas {
		out.IssuingCas = append(out.IssuingCas, s.caToPB(ca))
	}
	return out, nil
}

// CompleteIssuingCa implements IssuanceService.
func (s *issuanceService) CompleteIssuingCa(ctx context.Context, req *pb.CompleteIssuingCaRequest) (*pb.IssuingCa, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	ca, err := s.admin.CompleteIssuingCA(ctx, req.GetName(), req.GetEtag(), req.GetCertificateChainPem())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return s.caToPB(ca), nil
}

// DisableIssuingCa implements IssuanceService.
func (s *issuanceService) DisableIssuingCa(ctx context.Context, req *pb.DisableIssuingCaRequest) (*pb.IssuingCa, error) {
	return s.setState(ctx, req.GetName(), req.GetEtag(), false)
}

// EnableIssuingCa implements IssuanceService.
func (s *issuanceService) EnableIssuingCa(ctx context.Context, req *pb.EnableIssuingCaRequest) (*pb.IssuingCa, error) {
	return s.setState(ctx, req.GetName(), req.GetEtag(), true)
}

func (s *issuanceService) setState(ctx context.Context, name, etag string, on bool) (*pb.IssuingCa, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	ca, err := s.admin.SetIssuingCAEnabled(ctx, name, etag, on)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return s.caToPB(ca), nil
}

// DeleteIssuingCa implements IssuanceService.
func (s *issuanceService) DeleteIssuingCa(ctx context.Context, req *pb.DeleteIssuingCaRequest) (*emptypb.Empty, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.admin.DeleteIssuingCA(ctx, req.GetName(), req.GetEtag()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &emptypb.Empty{}, nil
}

func credPolicyToPB(p *issuance.Policy) *pb.CredentialPolicy {
	out := &pb.CredentialPolicy{Name: p.Name, IssuingCa: p.IssuingCA, Validity: durationpb.New(p.Validity), RenewalGrace: durationpb.New(p.RenewalGrace),
		Overlap: durationpb.New(p.Overlap), RevokeOnDisable: p.RevokeOnDisable, CreateTime: ts(p.Created), UpdateTime: ts(p.Updated), Etag: p.Etag}
	for _, k := range p.EffectiveKeyTypes() {
		out.KeyTypes = append(out.KeyTypes, string(k))
	}
	return out
}

func durationFromPB(field string, d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, fault.Invalidf("%s: %v", field, err)
	}
	return d.AsDuration(), nil
}

func credPolicyFromPB(in *pb.CredentialPolicy) (*issuance.Policy, error) {
	if in == nil {
		return nil, fault.Invalidf("credential_policy is required")
	}
	p := &issuance.Policy{Name: in.GetName(), IssuingCA: in.GetIssuingCa(), RevokeOnDisable: in.GetRevokeOnDisable(), Etag: in.GetEtag()}
	for _, k := range in.GetKeyTypes() {
		p.KeyTypes = append(p.KeyTypes, issuance.KeyType(k))
	}
	var err error
	if p.Validity, err = durationFromPB("validity", in.GetValidity()); err != nil {
		return nil, err
	}
	if p.RenewalGrace, err = durationFromPB("renewal_grace", in.GetRenewalGrace()); err != nil {
		return nil, err
	}
	if p.Overlap, err = durationFromPB("overlap", in.GetOverlap()); err != nil {
		return nil, err
	}
	return p, nil
}

// CreateCredentialPolicy implements IssuanceService.
func (s *issuanceService) CreateCredentialPolicy(ctx context.Context, req *pb.CreateCredentialPolicyRequest) (*pb.CredentialPolicy, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	p, err := credPolicyFromPB(req.GetCredentialPolicy())
	if err == nil {
		p, err = s.admin.CreatePolicy(ctx, p)
	}
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return credPolicyToPB(p), nil
}

// GetCredentialPolicy implements IssuanceService.
func (s *issuanceService) GetCredentialPolicy(ctx context.Context, req *pb.GetCredentialPolicyRequest) (*pb.CredentialPolicy, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	p, err := s.admin.GetPolicy(ctx, req.GetName())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return credPolicyToPB(p), nil
}

// ListCredentialPolicies implements IssuanceService.
func (s *issuanceService) ListCredentialPolicies(ctx context.Context, _ *pb.ListCredentialPoliciesRequest) (*pb.ListCredentialPoliciesResponse, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	ps, err := s.admin.ListPolicies(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListCredentialPoliciesResponse{}
	for _, p := range ps {
		out.CredentialPolicies = append(out.CredentialPolicies, credPolicyToPB(p))
	}
	return out, nil
}

// UpdateCredentialPolicy implements IssuanceService.
func (s *issuanceService) UpdateCredentialPolicy(ctx context.Context, req *pb.UpdateCredentialPolicyRequest) (*pb.CredentialPolicy, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	p, err := credPolicyFromPB(req.GetCredentialPolicy())
	if err == nil {
		p, err = s.admin.UpdatePolicy(ctx, p)
	}
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return credPolicyToPB(p), nil
}

// DeleteCredentialPolicy implements IssuanceService.
func (s *issuanceService) DeleteCredentialPolicy(ctx context.Context, req *pb.DeleteCredentialPolicyRequest) (*emptypb.Empty, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.admin.DeletePolicy(ctx, req.GetName(), req.GetEtag()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &emptypb.Empty{}, nil
}

func revocationToPB(r *issuance.Revocation) *pb.Revocation {
	return &pb.Revocation{IssuingCa: r.IssuingCA, Serial: r.Serial, RegistrationId: r.RegistrationID, RevokeTime: ts(r.RevokedAt),
		Reason: int32(r.Reason), NotAfter: ts(r.NotAfter)}
}

// RevokeCertificates implements IssuanceService: it needs
// RegistrationStatusWrite as well as ServiceConfig.
func (s *issuanceService) RevokeCertificates(ctx context.Context, req *pb.RevokeCertificatesRequest) (*pb.RevokeCertificatesResponse, error) {
	ctx, k, err := s.caller(ctx, access.ServiceConfig)
	if err == nil {
		err = access.Require(k, access.RegistrationWrite)
	}
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if req.GetRegistrationId() != "" {
		if err := enrollment.ValidateRegistrationID(req.GetRegistrationId()); err != nil {
			return nil, s.fail(ctx, err)
		}
	}
	revs, err := s.admin.RevokeCertificates(ctx, admin.Revoke{RegistrationID: req.GetRegistrationId(), IssuingCA: req.GetIssuingCa(),
		Serial: req.GetSerial(), Reason: int(req.GetReason())})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.RevokeCertificatesResponse{}
	for _, r := range revs {
		out.Revocations = append(out.Revocations, revocationToPB(r))
	}
	return out, nil
}

// ListRevocations implements IssuanceService.
func (s *issuanceService) ListRevocations(ctx context.Context, req *pb.ListRevocationsRequest) (*pb.ListRevocationsResponse, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	n := int(req.GetPageSize())
	switch {
	case n == 0:
		n = 100
	case n < 0 || n > 1000:
		return nil, s.fail(ctx, fault.Invalidf("page_size %d is not 1-1000", n))
	}
	revs, next, err := s.admin.ListRevocations(ctx, req.GetIssuingCa(), req.GetPageToken(), n)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListRevocationsResponse{NextPageToken: next}
	for _, r := range revs {
		out.Revocations = append(out.Revocations, revocationToPB(r))
	}
	return out, nil
}

// PKIHandler is pkiHandler, for the plain-HTTP listener (listen.pki).
func PKIHandler(a *issuance.Authority) http.Handler { return pkiHandler(a) }

// pkiHandler publishes each issuing CA's CRL (GET /pki/{ca}/crl, DER) and
// answers OCSP (POST /pki/{ca}/ocsp, and GET /pki/{ca}/ocsp/{base64
// request} as RFC 6960 allows) without an access key: relying parties
// (hubs, openssl) check certificates with them.
func pkiHandler(a *issuance.Authority) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pki/{ca}/crl", func(w http.ResponseWriter, r *http.Request) {
		der, err := a.CRL(r.Context(), r.PathValue("ca"))
		if err != nil {
			pkiError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Header().Set("Cache-Control", "max-age=300")
		w.Write(der)
	})
	ocspAnswer := func(w http.ResponseWriter, r *http.Request, req []byte) {
		out, err := a.OCSP(r.Context(), r.PathValue("ca"), req)
		if err != nil {
			pkiError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(out)
	}
	mux.HandleFunc("POST /pki/{ca}/ocsp", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, issuance.MaxOCSPRequest+1))
		if err != nil {
			http.Error(w, "read error", http.StatusBadRequest)
			return
		}
		ocspAnswer(w, r, body)
	})
	mux.HandleFunc("GET /pki/{ca}/ocsp/{req...}", func(w http.ResponseWriter, r *http.Request) {
		raw, err := decodeOCSPPath(r.PathValue("req"))
		if err != nil {
			raw = nil // answered malformedRequest
		}
		ocspAnswer(w, r, raw)
	})
	return mux
}

func pkiError(w http.ResponseWriter, err error) {
	switch fault.KindOf(err) {
	case fault.NotFound:
		http.Error(w, "no such issuing CA", http.StatusNotFound)
	default:
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	}
}

// decodeOCSPPath reads a GET OCSP request: base64 (standard, URL-escaped)
// of the DER request.
func decodeOCSPPath(p string) ([]byte, error) {
	if u, err := url.PathUnescape(p); err == nil {
		p = u
	}
	if len(p) > 2*issuance.MaxOCSPRequest {
		return nil, fault.Invalidf("OCSP request too large")
	}
	return base64.StdEncoding.DecodeString(p)
}
