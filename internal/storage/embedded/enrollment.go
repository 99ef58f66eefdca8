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

func caKey(subjectKey, name string) string { return subjectKey + "/" + name }

// CreateCA implements enrollment.CAStore.
func (s *Store) CreateCA(ctx context.Context, ca *enrollment.CA) (string, error) {
	var etag string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bCA)
		if b.Get([]byte(ca.Name)) != nil {
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
		if err := putJSON(b, ca.Name, &rec); err != nil {
			return err
		}
		if err := tx.Bucket(bCAThumb).Put([]byte(ca.Thumbprint), []byte(ca.Name)); err != nil {
			return err
		}
		return tx.Bucket(bCASubject).Put([]byte(caKey(ca.SubjectKey, ca.Name)), nil)
	})
	return etag, err
}

func getCA(tx *bolt.Tx, name string) (*caRecord, error) {
	var rec caRecord
	ok, err := getJSON(tx.Bucket(bCA), name, &rec)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fault.NotFoundf("CA certificate %q not found", name)
	}
	return &rec, nil
}

// GetCA implements enrollment.CAStore.
func (s *Store) GetCA(ctx context.Context, name string) (*enrollment.CA, error) {
	var out *enrollment.CA
	err := s.view(ctx, func(tx *bolt.Tx) error {
		rec, err := getCA(tx, name)
		if err == nil {
			out = rec.domain()
		}
		return err
	})
	return out, err
}

// FindCAByThumbprint implements enrollment.CAStore.
func (s *Store) FindCAByThumbprint(ctx context.Context, thumbprint string) (*enrollment.CA, error) {
	var out *enrollment.CA
	err := s.view(ctx, func(tx *bolt.Tx) error {
		name := tx.Bucket(bCAThumb).Get([]byte(thumbprint))
		if name == nil {
			return fault.NotFoundf("no CA certificate with thumbprint %s", thumbprint)
		}
		rec, err := getCA(tx, string(name))
		if err == nil {
			out = rec.domain()
		}
		return err
	})
	return out, err
}

// FindCAsBySubject implements enrollment.CAStore.
func (s *Store) FindCAsBySubject(ctx context.Context, subjectKey string) ([]*enrollment.CA, error) {
	var out []*enrollment.CA
	err := s.view(ctx, func(tx *bolt.Tx) error {
		prefix := []byte(subjectKey + "/")
		c := tx.Bucket(bCASubject).Cursor()
		for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
			rec, err := getCA(tx, string(k[len(prefix):]))
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
	var out []*enrollment.CA
	var next string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		next, err = page(tx.Bucket(bCA), nil, p.Token, p.Limit, func(k, v []byte) (bool, error) {
			var rec caRecord
			if _, err := getJSON(tx.Bucket(bCA), string(k), &rec); err != nil {
				return false, err
			}
			out = append(out, rec.domain())
			return true, nil
		})
		return err
	})
	return out, next, err
}

// UpdateCA implements enrollment.CAStore.
func (s *Store) UpdateCA(ctx context.Context, ca *enrollment.CA) (string, error) {
	var etag string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		rec, err := getCA(tx, ca.Name)
		if err != nil {
			return err
		}
		if err := checkEtag("CA certificate", ca.Name, ca.Etag, rec.Etag); err != nil {
			return err
		}
		if etag, err = nextEtag(tx); err != nil {
			return err
		}
		rec.Verified, rec.Code, rec.CodeExpires, rec.Updated, rec.Etag = ca.Verified, ca.VerificationCode, ca.CodeExpires, ca.Updated, etag
		return putJSON(tx.Bucket(bCA), ca.Name, rec)
	})
	return etag, err
}

// DeleteCA implements enrollment.CAStore.
func (s *Store) DeleteCA(ctx context.Context, name, etag string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		rec, err := getCA(tx, name)
		if err != nil {
			return err
		}
		if etag != "" {
			if err := checkEtag("CA certificate", name, etag, rec.Etag); err != nil {
				return err
			}
		}
		if g := tx.Bucket(bGroupCA).Get([]byte(name)); g != nil {
			return fault.New(fault.FailedPrecondition, fault.ResourceInUse, "CA certificate %q is used by enrollment group %q; delete the group first", name, g)
		}
		if err := tx.Bucket(bCA).Delete([]byte(name)); err != nil {
			return err
		}
		if err := tx.Bucket(bCAThumb).Delete([]byte(rec.Thumbprint)); err != nil {
			return err
		}
		return tx.Bucket(bCASubject).Delete([]byte(caKey(rec.SubjectKey, name)))
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

func getGroup(tx *bolt.Tx, id string) (*groupRecord, error) {
	var rec groupRecord
	ok, err := getJSON(tx.Bucket(bGroup), id, &rec)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fault.NotFoundf("enrollment group %q not found", id)
	}
	return &rec, nil
}

// CreateGroup implements enrollment.GroupStore.
func (s *Store) CreateGroup(ctx context.Context, g *enrollment.Group) (string, error) {
	var etag string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bGroup).Get([]byte(g.ID)) != nil {
			return fault.Existsf("enrollment group %q already exists", g.ID)
		}
		if tx.Bucket(bCA).Get([]byte(g.CAName)) == nil {
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
		if err := putJSON(tx.Bucket(bGroup), g.ID, &rec); err != nil {
			return err
		}
		return tx.Bucket(bGroupCA).Put([]byte(g.CAName), []byte(g.ID))
	})
	return etag, err
}

// GetGroup implements enrollment.GroupStore.
func (s *Store) GetGroup(ctx context.Context, id string) (*enrollment.Group, error) {
	var out *enrollment.Group
	err := s.view(ctx, func(tx *bolt.Tx) error {
		rec, err := getGroup(tx, id)
		if err == nil {
			out = rec.domain()
		}
		return err
	})
	return out, err
}

// FindGroupByCA implements enrollment.GroupStore.
func (s *Store) FindGroupByCA(ctx context.Context, caName string) (*enrollment.Group, error) {
	var out *enrollment.Group
	err := s.view(ctx, func(tx *bolt.Tx) error {
		id := tx.Bucket(bGroupCA).Get([]byte(caName))
		if id == nil {
			return fault.NotFoundf("no enrollment group for CA certificate %q", caName)
		}
		rec, err := getGroup(tx, string(id))
		if err == nil {
			out = rec.domain()
		}
		return err
	})
	return out, err
}

// ListGroups implements enrollment.GroupStore.
func (s *Store) ListGroups(ctx context.Context, p enrollment.Page) ([]*enrollment.Group, string, error) {
	var out []*enrollment.Group
	var next string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		next, err = page(tx.Bucket(bGroup), nil, p.Token, p.Limit, func(k, v []byte) (bool, error) {
			rec, err := getGroup(tx, string(k))
			if err != nil {
				return false, err
			}
			out = append(out, rec.domain())
			return true, nil
		})
		return err
	})
	return out, next, err
}

// UpdateGroup implements enrollment.GroupStore.
func (s *Store) UpdateGroup(ctx context.Context, g *enrollment.Group) (string, error) {
	var etag string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		rec, err := getGroup(tx, g.ID)
		if err != nil {
			return err
		}
		if err := checkEtag("enrollment group", g.ID, g.Etag, rec.Etag); err != nil {
			return err
		}
		if etag, err = nextEtag(tx); err != nil {
			return err
		}
		rec.Disabled, rec.Allocation, rec.Updated, rec.Etag = g.Disabled, toAllocationRecord(g.Allocation), g.Updated, etag
		return putJSON(tx.Bucket(bGroup), g.ID, rec)
	})
	return etag, err
}

// DeleteGroup implements enrollment.GroupStore.
func (s *Store) DeleteGroup(ctx context.Context, id, etag string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		rec, err := getGroup(tx, id)
		if err != nil {
			return err
		}
		if etag != "" {
			if err := checkEtag("enrollment group", id, etag, rec.Etag); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bGroup).Delete([]byte(id)); err != nil {
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

func getIndividual(tx *bolt.Tx, key string) (*individualRecord, error) {
	var rec individualRecord
	ok, err := getJSON(tx.Bucket(bIndividual), key, &rec)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fault.NotFoundf("enrollment %q not found", key)
	}
	return &rec, nil
}

// CreateIndividual implements enrollment.IndividualStore.
func (s *Store) CreateIndividual(ctx context.Context, e *enrollment.Individual) (string, error) {
	var etag string
	key := enrollment.Key(e.RegistrationID)
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bIndividual).Get([]byte(key)) != nil {
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
		if err := putJSON(tx.Bucket(bIndividual), key, &rec); err != nil {
			return err
		}
		return tx.Bucket(bIndThumb).Put([]byte(e.Thumbprint), []byte(key))
	})
	return etag, err
}

// GetIndividual implements enrollment.IndividualStore.
func (s *Store) GetIndividual(ctx context.Context, registrationID string) (*enrollment.Individual, error) {
	var out *enrollment.Individual
	err := s.view(ctx, func(tx *bolt.Tx) error {
		rec, err := getIndividual(tx, enrollment.Key(registrationID))
		if err == nil {
			out = rec.domain()
		}
		return err
	})
	return out, err
}

// FindIndividualByThumbprint implements enrollment.IndividualStore.
func (s *Store) FindIndividualByThumbprint(ctx context.Context, thumbprint string) (*enrollment.Individual, error) {
	var out *enrollment.Individual
	err := s.view(ctx, func(tx *bolt.Tx) error {
		key := tx.Bucket(bIndThumb).Get([]byte(thumbprint))
		if key == nil {
			return fault.NotFoundf("no enrollment with thumbprint %s", thumbprint)
		}
		rec, err := getIndividual(tx, string(key))
		if err == nil {
			out = rec.domain()
		}
		return err
	})
	return out, err
}

// ListIndividuals implements enrollment.IndividualStore.
func (s *Store) ListIndividuals(ctx context.Context, p enrollment.Page) ([]*enrollment.Individual, string, error) {
	var out []*enrollment.Individual
	var next string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		next, err = page(tx.Bucket(bIndividual), nil, p.Token, p.Limit, func(k, v []byte) (bool, error) {
			rec, err := getIndividual(tx, string(k))
			if err != nil {
				return false, err
			}
			out = append(out, rec.domain())
			return true, nil
		})
		return err
	})
	return out, next, err
}

// UpdateIndividual implements enrollment.IndividualStore.
func (s *Store) UpdateIndividual(ctx context.Context, e *enrollment.Individual) (string, error) {
	var etag string
	key := enrollment.Key(e.RegistrationID)
	err := s.update(ctx, func(tx *bolt.Tx) error {
		rec, err := getIndividual(tx, key)
		if err != nil {
			return err
		}
		if err := checkEtag("enrollment", e.RegistrationID, e.Etag, rec.Etag); err != nil {
			return err
		}
		if etag, err = nextEtag(tx); err != nil {
			return err
		}
		rec.DeviceID, rec.Disabled, rec.Allocation, rec.Updated, rec.Etag = e.DeviceID, e.Disabled, toAllocationRecord(e.Allocation), e.Updated, etag
		return putJSON(tx.Bucket(bIndividual), key, rec)
	})
	return etag, err
}

// DeleteIndividual implements enrollment.IndividualStore.
func (s *Store) DeleteIndividual(ctx context.Context, registrationID, etag string) error {
	key := enrollment.Key(registrationID)
	return s.update(ctx, func(tx *bolt.Tx) error {
		rec, err := getIndividual(tx, key)
		if err != nil {
			return err
		}
		if etag != "" {
			if err := checkEtag("enrollment", registrationID, etag, rec.Etag); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bIndividual).Delete([]byte(key)); err != nil {
			return err
		}
		return tx.Bucket(bIndThumb).Delete([]byte(rec.Thumbprint))
	})
}
