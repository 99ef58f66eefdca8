package embedded

import (
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/storage/record"
)

var cas = table[record.CA, *enrollment.CA]{bCA, "CA certificate", (*record.CA).Domain, func(r *record.CA) string { return r.Etag }}

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
		if err := cas.put(tx, ca.Name, record.FromCA(ca, etag)); err != nil {
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
			out = append(out, rec.Domain())
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
		rec.ApplyUpdate(ca, etag)
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

var groups = table[record.Group, *enrollment.Group]{bGroup, "enrollment group", (*record.Group).Domain, func(r *record.Group) string { return r.Etag }}

// CreateGroup implements enrollment.GroupStore.
func (s *Store) CreateGroup(ctx context.Context, g *enrollment.Group) (string, error) {
	var etag string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if groups.exists(tx, g.ID) {
			return fault.Existsf("enrollment group %q already exists", g.ID)
		}
		if g.CAName != "" { // symmetric-key groups have no CA
			if !cas.exists(tx, g.CAName) {
				return fault.New(fault.FailedPrecondition, fault.ResourceNotFound, "CA certificate %q does not exist", g.CAName)
			}
			if other := tx.Bucket(bGroupCA).Get([]byte(g.CAName)); other != nil {
				return fault.Existsf("CA certificate %q already has enrollment group %q", g.CAName, other)
			}
		}
		var err error
		if etag, err = nextEtag(tx); err != nil {
			return err
		}
		if err := groups.put(tx, g.ID, record.FromGroup(g, etag)); err != nil {
			return err
		}
		if g.CAName == "" {
			return nil
		}
		return tx.Bucket(bGroupCA).Put([]byte(g.CAName), []byte(g.ID))
	})
	return etag, err
}

// GroupsVersion returns a number that changes whenever an enrollment group
// is created, updated or deleted.
func (s *Store) GroupsVersion(ctx context.Context) (uint64, error) {
	return groups.version(ctx, s)
}

// TrustVersion changes whenever a CA certificate or an enrollment group
// is written (provisioning's cache of them, ADR 16).
func (s *Store) TrustVersion(ctx context.Context) (uint64, error) {
	var v uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v = tx.Bucket(bCA).Sequence() + tx.Bucket(bGroup).Sequence()
		return nil
	})
	return v, err
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
		rec.ApplyUpdate(g, etag)
		return groups.put(tx, g.ID, rec)
	})
	return etag, err
}

// DeleteGroup implements enrollment.GroupStore.
func (s *Store) DeleteGroup(ctx context.Context, id, etag string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		rec, err := groups.loadForDelete(tx, id, etag)
		if err != nil || rec.CAName == "" {
			return err
		}
		return tx.Bucket(bGroupCA).Delete([]byte(rec.CAName))
	})
}

var individuals = table[record.Individual, *enrollment.Individual]{bIndividual, "enrollment", (*record.Individual).Domain, func(r *record.Individual) string { return r.Etag }}

// CreateIndividual implements enrollment.IndividualStore.
func (s *Store) CreateIndividual(ctx context.Context, e *enrollment.Individual) (string, error) {
	var etag string
	key := enrollment.Key(e.RegistrationID)
	err := s.batch(ctx, func(tx *bolt.Tx) error { // bulk uploads share commits
		if individuals.exists(tx, key) {
			return fault.Existsf("enrollment %q already exists", e.RegistrationID)
		}
		if other := tx.Bucket(bIndThumb).Get([]byte(e.Thumbprint)); other != nil {
			return fault.Existsf("this certificate is already enrolled as %q", other)
		}
		if err := checkNames(tx, key, e.EffectiveDeviceID()); err != nil {
			return err
		}
		var err error
		if etag, err = nextEtag(tx); err != nil {
			return err
		}
		if err := individuals.put(tx, key, record.FromIndividual(e, etag)); err != nil {
			return err
		}
		if err := tx.Bucket(bIndDevice).Put([]byte(enrollment.Key(e.EffectiveDeviceID())), []byte(key)); err != nil {
			return err
		}
		return tx.Bucket(bIndThumb).Put([]byte(e.Thumbprint), []byte(key))
	})
	return etag, err
}

// checkNames refuses an individual enrollment (registration key key) whose
// registration ID or device ID another individual enrollment holds as its
// registration ID or device ID (ADR 17: one namespace of reserved names).
func checkNames(tx *bolt.Tx, key, deviceID string) error {
	dev := enrollment.Key(deviceID)
	if other := tx.Bucket(bIndDevice).Get([]byte(key)); other != nil && string(other) != key {
		return enrollment.NameTaken(key, string(other), true)
	}
	if other := tx.Bucket(bIndDevice).Get([]byte(dev)); other != nil && string(other) != key {
		return enrollment.NameTaken(deviceID, string(other), true)
	}
	if dev != key && individuals.exists(tx, dev) {
		return enrollment.NameTaken(deviceID, dev, false)
	}
	return nil
}

// ReservedByIndividual implements enrollment.IndividualStore.
func (s *Store) ReservedByIndividual(ctx context.Context, name string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	key := []byte(enrollment.Key(name))
	var held bool
	err := s.db.View(func(tx *bolt.Tx) error {
		held = tx.Bucket(bIndividual).Get(key) != nil || tx.Bucket(bIndDevice).Get(key) != nil
		return nil
	})
	return held, err
}

// rebuildDeviceIndex creates bIndDevice from the individual enrollments.
func rebuildDeviceIndex(tx *bolt.Tx) error {
	b, err := tx.CreateBucket(bIndDevice)
	if err != nil {
		return err
	}
	return tx.Bucket(bIndividual).ForEach(func(k, _ []byte) error {
		rec, err := individuals.load(tx, string(k))
		if err != nil {
			return err
		}
		return b.Put([]byte(enrollment.Key(rec.Device())), k)
	})
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
		oldDev := enrollment.Key(rec.Device())
		etag = en
		rec.ApplyUpdate(e, etag)
		newDev := rec.Device()
		if enrollment.Key(newDev) != oldDev {
			if err := checkNames(tx, key, newDev); err != nil {
				return err
			}
			if err := tx.Bucket(bIndDevice).Delete([]byte(oldDev)); err != nil {
				return err
			}
			if err := tx.Bucket(bIndDevice).Put([]byte(enrollment.Key(newDev)), []byte(key)); err != nil {
				return err
			}
		}
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
		dev := []byte(enrollment.Key(rec.Device()))
		if string(tx.Bucket(bIndDevice).Get(dev)) == enrollment.Key(registrationID) {
			if err := tx.Bucket(bIndDevice).Delete(dev); err != nil {
				return err
			}
		}
		return tx.Bucket(bIndThumb).Delete([]byte(rec.Thumbprint))
	})
}
