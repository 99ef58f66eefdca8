package docs

import (
	"context"
	"encoding/json"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/issuance"
)

// Issuance is issuance.Store on a backend's documents.
type Issuance struct{ D Docs }

var _ issuance.Store = Issuance{}

// Document kinds; a CA's revocations are kind "rev:" + its name.
const (
	kindCA     = "issuing_ca"
	kindPolicy = "credential_policy"
	maxRevoked = 1_000_000
)

func revKind(ca string) string { return "rev:" + ca }

// Record versions.
const version = 1

type caRecord struct {
	V       int       `json:"v"`
	Name    string    `json:"name"`
	State   string    `json:"state"`
	Cert    []byte    `json:"cert,omitempty"`
	Chain   [][]byte  `json:"chain,omitempty"`
	CSR     []byte    `json:"csr,omitempty"`
	Key     []byte    `json:"key"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

type policyRecord struct {
	V         int           `json:"v"`
	Name      string        `json:"name"`
	CA        string        `json:"ca"`
	KeyTypes  []string      `json:"keys,omitempty"`
	Validity  time.Duration `json:"validity"`
	Grace     time.Duration `json:"grace,omitempty"`
	Overlap   time.Duration `json:"overlap,omitempty"`
	RevokeDis bool          `json:"revoke_disable,omitempty"`
	Created   time.Time     `json:"created"`
	Updated   time.Time     `json:"updated"`
}

type revRecord struct {
	V        int       `json:"v"`
	RegID    string    `json:"reg,omitempty"`
	At       time.Time `json:"at"`
	Reason   int       `json:"reason,omitempty"`
	NotAfter time.Time `json:"na"`
}

func caRec(ca *issuance.CA) []byte {
	raw, _ := json.Marshal(caRecord{V: version, Name: ca.Name, State: string(ca.State), Cert: ca.CertDER, Chain: ca.ChainDER, CSR: ca.CSRDER,
		Key: ca.SealedKey, Created: ca.Created, Updated: ca.Updated})
	return raw
}

func caDomain(d *Doc) (*issuance.CA, error) {
	var r caRecord
	if err := json.Unmarshal(d.Raw, &r); err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "decode issuing CA %q", d.Name)
	}
	return &issuance.CA{Name: r.Name, State: issuance.CAState(r.State), CertDER: r.Cert, ChainDER: r.Chain, CSRDER: r.CSR, SealedKey: r.Key,
		Etag: d.Etag, Created: r.Created, Updated: r.Updated}, nil
}

func policyRec(p *issuance.Policy) []byte {
	r := policyRecord{V: version, Name: p.Name, CA: p.IssuingCA, Validity: p.Validity, Grace: p.RenewalGrace, Overlap: p.Overlap,
		RevokeDis: p.RevokeOnDisable, Created: p.Created, Updated: p.Updated}
	for _, k := range p.KeyTypes {
		r.KeyTypes = append(r.KeyTypes, string(k))
	}
	raw, _ := json.Marshal(r)
	return raw
}

func policyDomain(d *Doc) (*issuance.Policy, error) {
	var r policyRecord
	if err := json.Unmarshal(d.Raw, &r); err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "decode credential policy %q", d.Name)
	}
	p := &issuance.Policy{Name: r.Name, IssuingCA: r.CA, Validity: r.Validity, RenewalGrace: r.Grace, Overlap: r.Overlap,
		RevokeOnDisable: r.RevokeDis, Etag: d.Etag, Created: r.Created, Updated: r.Updated}
	for _, k := range r.KeyTypes {
		p.KeyTypes = append(p.KeyTypes, issuance.KeyType(k))
	}
	return p, nil
}

func (s Issuance) count(ctx context.Context, kind string, max int, what string) error {
	have, err := s.D.ListDocs(ctx, kind, "", max)
	if err != nil {
		return err
	}
	if len(have) >= max {
		return fault.New(fault.ResourceExhausted, fault.FieldInvalid, "at most %d %s may exist", max, what)
	}
	return nil
}

// CreateIssuingCA implements issuance.Store.
func (s Issuance) CreateIssuingCA(ctx context.Context, ca *issuance.CA) (string, error) {
	if err := s.count(ctx, kindCA, issuance.MaxIssuingCAs, "issuing CAs"); err != nil {
		return "", err
	}
	return s.D.PutDoc(ctx, kindCA, ca.Name, caRec(ca), "", Create)
}

// GetIssuingCA implements issuance.Store.
func (s Issuance) GetIssuingCA(ctx context.Context, name string) (*issuance.CA, error) {
	d, err := s.D.GetDoc(ctx, kindCA, name)
	if err != nil {
		return nil, err
	}
	return caDomain(d)
}

// ListIssuingCAs implements issuance.Store.
func (s Issuance) ListIssuingCAs(ctx context.Context) ([]*issuance.CA, error) {
	ds, err := s.D.ListDocs(ctx, kindCA, "", issuance.MaxIssuingCAs)
	if err != nil {
		return nil, err
	}
	out := make([]*issuance.CA, 0, len(ds))
	for _, d := range ds {
		ca, err := caDomain(d)
		if err != nil {
			return nil, err
		}
		out = append(out, ca)
	}
	return out, nil
}

// UpdateIssuingCA implements issuance.Store.
func (s Issuance) UpdateIssuingCA(ctx context.Context, ca *issuance.CA) (string, error) {
	etag, err := s.D.PutDoc(ctx, kindCA, ca.Name, caRec(ca), ca.Etag, Update)
	return etag, err
}

// DeleteIssuingCA implements issuance.Store.
func (s Issuance) DeleteIssuingCA(ctx context.Context, name, etag string) error {
	err := s.D.DeleteDoc(ctx, kindCA, name, etag)
	return err
}

// CreatePolicy implements issuance.Store.
func (s Issuance) CreatePolicy(ctx context.Context, p *issuance.Policy) (string, error) {
	if err := s.count(ctx, kindPolicy, issuance.MaxPolicies, "credential policies"); err != nil {
		return "", err
	}
	etag, err := s.D.PutDoc(ctx, kindPolicy, p.Name, policyRec(p), "", Create)
	return etag, err
}

// GetPolicy implements issuance.Store.
func (s Issuance) GetPolicy(ctx context.Context, name string) (*issuance.Policy, error) {
	d, err := s.D.GetDoc(ctx, kindPolicy, name)
	if err != nil {
		return nil, err
	}
	return policyDomain(d)
}

// ListPolicies implements issuance.Store.
func (s Issuance) ListPolicies(ctx context.Context) ([]*issuance.Policy, error) {
	ds, err := s.D.ListDocs(ctx, kindPolicy, "", issuance.MaxPolicies)
	if err != nil {
		return nil, err
	}
	out := make([]*issuance.Policy, 0, len(ds))
	for _, d := range ds {
		p, err := policyDomain(d)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// UpdatePolicy implements issuance.Store.
func (s Issuance) UpdatePolicy(ctx context.Context, p *issuance.Policy) (string, error) {
	etag, err := s.D.PutDoc(ctx, kindPolicy, p.Name, policyRec(p), p.Etag, Update)
	return etag, err
}

// DeletePolicy implements issuance.Store.
func (s Issuance) DeletePolicy(ctx context.Context, name, etag string) error {
	err := s.D.DeleteDoc(ctx, kindPolicy, name, etag)
	return err
}

// IssuanceVersion implements issuance.Store.
func (s Issuance) IssuanceVersion(ctx context.Context) (uint64, error) {
	return s.D.DocsVersion(ctx, kindCA, kindPolicy)
}

// Revoke implements issuance.Store.
func (s Issuance) Revoke(ctx context.Context, r *issuance.Revocation) (bool, error) {
	raw, _ := json.Marshal(revRecord{V: version, RegID: r.RegistrationID, At: r.RevokedAt, Reason: r.Reason, NotAfter: r.NotAfter})
	for range 8 {
		cur, err := s.GetRevocation(ctx, r.IssuingCA, r.Serial)
		switch {
		case fault.KindOf(err) == fault.NotFound:
			_, err = s.D.PutDoc(ctx, revKind(r.IssuingCA), r.Serial, raw, "", Create)
			if fault.KindOf(err) == fault.AlreadyExists {
				continue
			}
			return err == nil, err
		case err != nil:
			return false, err
		case !r.RevokedAt.Before(cur.RevokedAt):
			return false, nil // revoked already, no later than this
		}
		d, err := s.D.GetDoc(ctx, revKind(r.IssuingCA), r.Serial)
		if err != nil {
			continue
		}
		_, err = s.D.PutDoc(ctx, revKind(r.IssuingCA), r.Serial, raw, d.Etag, Update)
		if fault.KindOf(err) == fault.Conflict || fault.KindOf(err) == fault.NotFound {
			continue
		}
		return err == nil, err
	}
	return false, fault.New(fault.Unavailable, fault.StoreUnavailable, "too many concurrent revocations of %s; retry", r.Serial)
}

func revDomain(ca string, d *Doc) (*issuance.Revocation, error) {
	var r revRecord
	if err := json.Unmarshal(d.Raw, &r); err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "decode revocation %q", d.Name)
	}
	return &issuance.Revocation{IssuingCA: ca, Serial: d.Name, RegistrationID: r.RegID, RevokedAt: r.At, Reason: r.Reason, NotAfter: r.NotAfter}, nil
}

// GetRevocation implements issuance.Store.
func (s Issuance) GetRevocation(ctx context.Context, ca, serial string) (*issuance.Revocation, error) {
	d, err := s.D.GetDoc(ctx, revKind(ca), serial)
	if err != nil {
		return nil, err
	}
	return revDomain(ca, d)
}

// ListRevocations implements issuance.Store.
func (s Issuance) ListRevocations(ctx context.Context, ca string) ([]*issuance.Revocation, error) {
	ds, err := s.D.ListDocs(ctx, revKind(ca), "", maxRevoked)
	if err != nil {
		return nil, err
	}
	out := make([]*issuance.Revocation, 0, len(ds))
	for _, d := range ds {
		r, err := revDomain(ca, d)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// PageRevocations implements issuance.Store.
func (s Issuance) PageRevocations(ctx context.Context, ca, after string, limit int) ([]*issuance.Revocation, error) {
	ds, err := s.D.ListDocs(ctx, revKind(ca), after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]*issuance.Revocation, 0, len(ds))
	for _, d := range ds {
		r, err := revDomain(ca, d)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// RevocationsVersion implements issuance.Store.
func (s Issuance) RevocationsVersion(ctx context.Context, ca string) (uint64, error) {
	return s.D.DocsVersion(ctx, revKind(ca))
}

// DropRevocation implements issuance.Store.
func (s Issuance) DropRevocation(ctx context.Context, ca, serial string) error {
	return s.D.DeleteDoc(ctx, revKind(ca), serial, "")
}
