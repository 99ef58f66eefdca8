package embedded

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
)

type allocationRecord struct {
	Policy      string   `json:"p"`
	Shards      []string `json:"s,omitempty"`
	StaticShard string   `json:"st,omitempty"`
}

func toAllocationRecord(a enrollment.Allocation) allocationRecord {
	return allocationRecord{Policy: string(a.Policy), Shards: a.Shards, StaticShard: a.StaticShard}
}

func (r allocationRecord) domain() enrollment.Allocation {
	return enrollment.Allocation{Policy: enrollment.Policy(r.Policy), Shards: r.Shards, StaticShard: r.StaticShard}
}

type caRecord struct {
	V           int       `json:"v"`
	Name        string    `json:"name"`
	DER         []byte    `json:"der"`
	Thumbprint  string    `json:"thumb"`
	SubjectKey  string    `json:"subj"`
	Verified    bool      `json:"verified"`
	Code        string    `json:"code,omitempty"`
	CodeExpires time.Time `json:"code_exp,omitzero"`
	Etag        string    `json:"etag"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

func (r *caRecord) domain() *enrollment.CA {
	return &enrollment.CA{Name: r.Name, DER: r.DER, Thumbprint: r.Thumbprint, SubjectKey: r.SubjectKey,
		Verified: r.Verified, VerificationCode: r.Code, CodeExpires: r.CodeExpires,
		Meta: enrollment.Meta{Etag: r.Etag, Created: r.Created, Updated: r.Updated}}
}

var cas = table[caRecord, *enrollment.CA]{bCA, "CA certificate", (*caRecord).domain, func(r *caRecord) string { return r.Etag }}

func caSubjectKey(subjectKey, name string) string { return subjectKey + "/" + name }

// CreateCA implements enrollment.CAStore.
func (s *Store) CreateCA(ctx context.Context, ca *enrollment.CA) (string, error) {
	var etag string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if cas.exists(tx, ca.Name) {
			return fault.Existsf("CA certificate %q already exists", ca.Name)
		}
		if other := tx.Bucket(bCAThumb).Get([]byte(ca.Thumbprint)); other != nil {
			return fault.Existsf("this certificate is already uploaded as CA certificate %q", other)
		}
		var err error
		if etag, err = nextEtag(tx); err != nil {
			return err
		}
		rec := caRecord{V: schemaVersion, Name: ca.Name, DER: ca.DER, Thumbprint: ca.Thumbprint, SubjectKey: ca.SubjectKey,
			Verified: ca.Verified, Code: ca.VerificationCode, CodeExpires: ca.CodeExpires, Etag: etag, Created: ca.Created, Updated: ca.Updated}
		if err := cas.put(tx, ca.Name, &rec); err != nil {
			return err
		}
		if err := tx.Bucket(bCAThumb).Put([]byte(ca.Thumbprint), []byte(ca.Name)); err != nil {
			return err
		}
		return tx.Bucket(bCASubject).Put([]byte(caSubjectKey(ca.SubjectKey, ca.Name)), nil)
	})
	return etag, err
}

// GetCA implements enrollment.CAStore.
func (s *Store) GetCA(ctx context.Context, name string) (*enrollment.CA, error) {
	return cas.get(ctx, s, name)
}

// FindCAByThumbprint implements enrollment.CAStore.
func (s *Store) FindCAByThumbprint(ctx context.Context, thumbprint string) (*enrollment.CA, error) {
	return cas.via(ctx, s, bCAThumb, thumbprint)
}

// FindCAsBySubject implements enrollment.CAStore.
func (s *Store) FindCAsBySubject(ctx context.Context, subjectKey string) ([]*enrollment.CA, error) {
	var out []*enrollment.CA
	err := s.view(ctx, func(tx *bolt.Tx) error {
		prefix := []byte(caSubjectKey(subjectKey, ""))
		c := tx.Bucket(bCASubject).Cursor()
		for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
			rec, err := cas.load(tx, string(k[len(prefix):]))
			if err != nil {
				return err
			}
			out = append(out, rec.domain())
		}
		return nil
	})
	return out, err
}

// ListCAs implements enrollment.CAStore.
func (s *Store) ListCAs(ctx context.Context, p enrollment.Page) ([]*enrollment.CA, string, error) {
	return cas.list(ctx, s, p.Token, p.Limit)
}

// UpdateCA implements enrollment.CAStore.
func (s *Store) UpdateCA(ctx context.Context, ca *enrollment.CA) (string, error) {
	var etag string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		rec, e, err := cas.cas(tx, ca.Name, ca.Etag)
		if err != nil {
			return err
		}
		etag = e
		rec.Verified, rec.Code, rec.CodeExpires, rec.Updated, rec.Etag = ca.Verified, ca.VerificationCode, ca.CodeExpires, ca.Updated, etag
		return cas.put(tx, ca.Name, rec)
	})
	return etag, err
}

// DeleteCA implements enrollment.CAStore.
func (s *Store) DeleteCA(ctx context.Context, name, etag string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		if g := tx.Bucket(bGroupCA).Get([]byte(name)); g != nil {
			if _, err := cas.load(tx, name); err != nil {
				return err
			}
			return fault.New(fault.FailedPrecondition, fault.ResourceInUse, "CA certificate %q is used by enrollment group %q; delete the group first", name, g)
		}
		rec, err := cas.loadForDelete(tx, name, etag)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bCAThumb).Delete([]byte(rec.Thumbprint)); err != nil {
			return err
		}
		return tx.Bucket(bCASubject).Delete([]byte(caSubjectKey(rec.SubjectKey, name)))
	})
}

type groupRecord struct {
	V          int              `json:"v"`
	ID         string           `json:"id"`
	CAName     string           `json:"ca"`
	Disabled   bool             `json:"disabled,omitempty"`
	Allocation allocationRecord `json:"alloc"`
	Etag       string           `json:"etag"`
	Created    time.Time        `json:"created"`
	Updated    time.Time        `json:"updated"`
}

func (r *groupRecord) domain() *enrollment.Group {
	return &enrollment.Group{ID: r.ID, CAName: r.CAName, Disabled: r.Disabled, Allocation: r.Allocation.domain(),
		Meta: enrollment.Meta{Etag: r.Etag, Created: r.Created, Updated: r.Updated}}
}

var groups = table[groupRecord, *enrollment.Group]{bGroup, "enrollment group", (*groupRecord).domain, func(r *groupRecord) string { return r.Etag }}

// CreateGroup implements enrollment.GroupStore.
func (s *Store) CreateGroup(ctx context.Context, g *enrollment.Group) (string, error) {
	var etag string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if groups.exists(tx, g.ID) {
			return fault.Existsf("enrollment group %q already exists", g.ID)
		}
		if !cas.exists(tx, g.CAName) {
			return fault.New(fault.FailedPrecondition, fault.ResourceNotFound, "CA certificate %q does not exist", g.CAName)
		}
		if other := tx.Bucket(bGroupCA).Get([]byte(g.CAName)); other != nil {
			return fault.Existsf("CA certificate %q already has enrollment group %q", g.CAName, other)
		}
		var err error
		if etag, err = nextEtag(tx); err != nil {
			return err
		}
		rec := groupRecord{V: schemaVersion, ID: g.ID, CAName: g.CAName, Disabled: g.Disabled,
			Allocation: toAllocationRecord(g.Allocation), Etag: etag, Created: g.Created, Updated: g.Updated}
		if err := groups.put(tx, g.ID, &rec); err != nil {
			return err
		}
		return tx.Bucket(bGroupCA).Put([]byte(g.CAName), []byte(g.ID))
	})
	return etag, err
}

// GetGroup implements enrollment.GroupStore.
func (s *Store) GetGroup(ctx context.Context, id string) (*enrollment.Group, error) {
	return groups.get(ctx, s, id)
}

// FindGroupByCA implements enrollment.GroupStore.
func (s *Store) FindGroupByCA(ctx context.Context, caName string) (*enrollment.Group, error) {
	return groups.via(ctx, s, bGroupCA, caName)
}

// ListGroups implements enrollment.GroupStore.
func (s *Store) ListGroups(ctx context.Context, p enrollment.Page) ([]*enrollment.Group, string, error) {
	return groups.list(ctx, s, p.Token, p.Limit)
}

// UpdateGroup implements enrollment.GroupStore.
func (s *Store) UpdateGroup(ctx context.Context, g *enrollment.Group) (string, error) {
	var etag string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		rec, e, err := groups.cas(tx, g.ID, g.Etag)
		if err != nil {
			return err
		}
		etag = e
		rec.Disabled, rec.Allocation, rec.Updated, rec.Etag = g.Disabled, toAllocationRecord(g.Allocation), g.Updated, etag
		return groups.put(tx, g.ID, rec)
	})
	return etag, err
}

// DeleteGroup implements enrollment.GroupStore.
func (s *Store) DeleteGroup(ctx context.Context, id, etag string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		rec, err := groups.loadForDelete(tx, id, etag)
		if err != nil {
			return err
		}
		return tx.Bucket(bGroupCA).Delete([]byte(rec.CAName))
	})
}

type individualRecord struct {
	V              int              `json:"v"`
	RegistrationID string           `json:"reg"`
	DeviceID       string           `json:"dev,omitempty"`
	Thumbprint     string           `json:"thumb"`
	Disabled       bool             `json:"disabled,omitempty"`
	Allocation     allocationRecord `json:"alloc"`
	Etag           string           `json:"etag"`
	Created        time.Time        `json:"created"`
	Updated        time.Time        `json:"updated"`
}

func (r *individualRecord) domain() *enrollment.Individual {
	return &enrollment.Individual{RegistrationID: r.RegistrationID, DeviceID: r.DeviceID, Thumbprint: r.Thumbprint,
		Disabled: r.Disabled, Allocation: r.Allocation.domain(),
		Meta: enrollment.Meta{Etag: r.Etag, Created: r.Created, Updated: r.Updated}}
}

var individuals = table[individualRecord, *enrollment.Individual]{bIndividual, "enrollment", (*individualRecord).domain, func(r *individualRecord) string { return r.Etag }}

// CreateIndividual implements enrollment.IndividualStore.
func (s *Store) CreateIndividual(ctx context.Context, e *enrollment.Individual) (string, error) {
	var etag string
	key := enrollment.Key(e.RegistrationID)
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if individuals.exists(tx, key) {
			return fault.Existsf("enrollment %q already exists", e.RegistrationID)
		}
		if other := tx.Bucket(bIndThumb).Get([]byte(e.Thumbprint)); other != nil {
			return fault.Existsf("this certificate is already enrolled as %q", other)
		}
		var err error
		if etag, err = nextEtag(tx); err != nil {
			return err
		}
		rec := individualRecord{V: schemaVersion, RegistrationID: e.RegistrationID, DeviceID: e.DeviceID, Thumbprint: e.Thumbprint,
			Disabled: e.Disabled, Allocation: toAllocationRecord(e.Allocation), Etag: etag, Created: e.Created, Updated: e.Updated}
		if err := individuals.put(tx, key, &rec); err != nil {
			return err
		}
		return tx.Bucket(bIndThumb).Put([]byte(e.Thumbprint), []byte(key))
	})
	return etag, err
}

// GetIndividual implements enrollment.IndividualStore.
func (s *Store) GetIndividual(ctx context.Context, registrationID string) (*enrollment.Individual, error) {
	return individuals.get(ctx, s, enrollment.Key(registrationID))
}

// FindIndividualByThumbprint implements enrollment.IndividualStore.
func (s *Store) FindIndividualByThumbprint(ctx context.Context, thumbprint string) (*enrollment.Individual, error) {
	return individuals.via(ctx, s, bIndThumb, thumbprint)
}

// ListIndividuals implements enrollment.IndividualStore.
func (s *Store) ListIndividuals(ctx context.Context, p enrollment.Page) ([]*enrollment.Individual, string, error) {
	return individuals.list(ctx, s, p.Token, p.Limit)
}

// UpdateIndividual implements enrollment.IndividualStore.
func (s *Store) UpdateIndividual(ctx context.Context, e *enrollment.Individual) (string, error) {
	var etag string
	key := enrollment.Key(e.RegistrationID)
	err := s.update(ctx, func(tx *bolt.Tx) error {
		rec, en, err := individuals.cas(tx, key, e.Etag)
		if err != nil {
			return err
		}
		etag = en
		rec.DeviceID, rec.Disabled, rec.Allocation, rec.Updated, rec.Etag = e.DeviceID, e.Disabled, toAllocationRecord(e.Allocation), e.Updated, etag
		return individuals.put(tx, key, rec)
	})
	return etag, err
}

// DeleteIndividual implements enrollment.IndividualStore.
func (s *Store) DeleteIndividual(ctx context.Context, registrationID, etag string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		rec, err := individuals.loadForDelete(tx, enrollment.Key(registrationID), etag)
		if err != nil {
			return err
		}
		return tx.Bucket(bIndThumb).Delete([]byte(rec.Thumbprint))
	})
}
