package admin

import (
	"context"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// Reads and the deletes that need no more than the store's own checks.
// Transports call these, never the store: every operator (and hub) read
// and write passes admin, so that permission filtering and the audit
// record have one place to go.

// GetCA returns a CA certificate.
func (s *Service) GetCA(ctx context.Context, name string) (*enrollment.CA, error) {
	return s.Store.GetCA(ctx, name)
}

// FindCAByThumbprint returns the CA with that SHA-256 thumbprint.
func (s *Service) FindCAByThumbprint(ctx context.Context, thumbprint string) (*enrollment.CA, error) {
	return s.Store.FindCAByThumbprint(ctx, thumbprint)
}

// ListCAs pages through the CA certificates.
func (s *Service) ListCAs(ctx context.Context, p enrollment.Page) ([]*enrollment.CA, string, error) {
	return s.Store.ListCAs(ctx, p)
}

// DeleteCA deletes a CA certificate (etag "" for any version); the store
// refuses one that a group still names.
func (s *Service) DeleteCA(ctx context.Context, name, etag string) error {
	if err := s.write(ctx, change{action: "DeleteCA", resource: name, ifMatch: etag}, func() error { return s.Store.DeleteCA(ctx, name, etag) }); err != nil {
		return err
	}
	if s.Revocation != nil {
		// Its uploaded CRL goes with it (best effort: a CRL left behind
		// only applies to certificates that CA signed).
		if err := s.Revocation.DeleteUploaded(ctx, name); err != nil && fault.KindOf(err) != fault.NotFound && s.Log != nil {
			s.Log.Warn("the deleted CA's CRL was not deleted", "ca", name, "err", err)
		}
	}
	return nil
}

// GetGroup returns an enrollment group.
func (s *Service) GetGroup(ctx context.Context, id string) (*enrollment.Group, error) {
	return s.Store.GetGroup(ctx, id)
}

// ListGroups pages through the enrollment groups.
func (s *Service) ListGroups(ctx context.Context, p enrollment.Page) ([]*enrollment.Group, string, error) {
	return s.Store.ListGroups(ctx, p)
}

// GetIndividual returns an individual enrollment.
func (s *Service) GetIndividual(ctx context.Context, registrationID string) (*enrollment.Individual, error) {
	return s.Store.GetIndividual(ctx, registrationID)
}

// ListIndividuals pages through the individual enrollments.
func (s *Service) ListIndividuals(ctx context.Context, p enrollment.Page) ([]*enrollment.Individual, string, error) {
	return s.Store.ListIndividuals(ctx, p)
}

// GetShard returns a hub shard.
func (s *Service) GetShard(ctx context.Context, id string) (*allocation.Shard, error) {
	return s.Store.GetShard(ctx, id)
}

// ListShards pages through the shards.
func (s *Service) ListShards(ctx context.Context, token string, limit int) ([]*allocation.Shard, string, error) {
	return s.Store.ListShards(ctx, token, limit)
}

// AllShards returns every shard.
func (s *Service) AllShards(ctx context.Context) ([]*allocation.Shard, error) {
	return s.Store.AllShards(ctx)
}

// DeleteShard deletes a shard (etag "" for any version); the store
// refuses one with devices.
func (s *Service) DeleteShard(ctx context.Context, id, etag string) error {
	return s.write(ctx, change{action: "DeleteShard", resource: id, ifMatch: etag}, func() error { return s.Store.DeleteShard(ctx, id, etag) })
}

// GetCluster returns a hub cluster.
func (s *Service) GetCluster(ctx context.Context, id string) (*allocation.Cluster, error) {
	return s.Store.GetCluster(ctx, id)
}

// ListClusters pages through the hub clusters.
func (s *Service) ListClusters(ctx context.Context, token string, limit int) ([]*allocation.Cluster, string, error) {
	return s.Store.ListClusters(ctx, token, limit)
}

// DeleteCluster deletes a hub cluster (etag "" for any version); the
// store refuses one that still has shards.
func (s *Service) DeleteCluster(ctx context.Context, id, etag string) error {
	return s.write(ctx, change{action: "DeleteCluster", resource: id, ifMatch: etag}, func() error { return s.Store.DeleteCluster(ctx, id, etag) })
}

// GetRegistration returns a registration.
func (s *Service) GetRegistration(ctx context.Context, registrationID string) (*registry.Registration, error) {
	return s.Store.GetRegistration(ctx, registrationID)
}

// ListRegistrations pages through the registrations that match f.
func (s *Service) ListRegistrations(ctx context.Context, f registry.Filter, token string, limit int) ([]*registry.Registration, string, error) {
	return s.Store.ListRegistrations(ctx, f, token, limit)
}

// DeleteRegistration deletes a registration and its identity (etag "" for
// any version), so that the device provisions afresh; hubs see a deleted
// event.
func (s *Service) DeleteRegistration(ctx context.Context, registrationID, etag string) error {
	return s.write(ctx, change{action: "DeleteRegistration", resource: registrationID, ifMatch: etag}, func() error {
		// Delete what was read (its etag), so that the certificates
		// revoked below are the ones deleted: a renewal in between is a
		// conflict, and the read is tried again.
		for range 5 {
			reg, err := s.Store.GetRegistration(ctx, registrationID)
			if err != nil {
				return err
			}
			if etag != "" && etag != reg.Etag {
				return fault.EtagMismatchf("registration %q was changed by someone else (etag %q is not current)", registrationID, etag)
			}
			err = s.Store.DeleteRegistration(ctx, registrationID, reg.Etag)
			if fault.KindOf(err) == fault.Conflict && etag == "" {
				continue
			}
			if err == nil {
				s.revokeOnDisable(ctx, reg)
			}
			return err
		}
		return fault.New(fault.Unavailable, fault.StoreUnavailable, "registration %q kept changing; retry", registrationID)
	})
}

// GetIdentity returns a device's registry identity.
func (s *Service) GetIdentity(ctx context.Context, deviceID string) (*registry.Identity, error) {
	return s.Store.GetIdentity(ctx, deviceID)
}

// Hub-facing reads and the hub's acknowledgement: the assignment stream
// (ADR 15).

// ReadEvents reads a shard's assignment log after a cursor.
func (s *Service) ReadEvents(ctx context.Context, shard string, after uint64, limit int) ([]*registry.Event, error) {
	return s.Store.ReadEvents(ctx, shard, after, limit)
}

// LogHead is a shard's last assignment log sequence.
func (s *Service) LogHead(ctx context.Context, shard string) (uint64, error) {
	return s.Store.LogHead(ctx, shard)
}

// LogHeads are shards' last sequences, in one read.
func (s *Service) LogHeads(ctx context.Context, shards []string) ([]uint64, error) {
	return s.Store.LogHeads(ctx, shards)
}

// AckEvents records what a hub cluster applied of a shard's log.
func (s *Service) AckEvents(ctx context.Context, cluster, shard string, seq uint64) error {
	return s.Store.AckEvents(ctx, cluster, shard, seq)
}

// AckedEvent is what a hub cluster acknowledged of a shard's log.
func (s *Service) AckedEvent(ctx context.Context, cluster, shard string) (uint64, error) {
	return s.Store.AckedEvent(ctx, cluster, shard)
}

// ListIdentities pages through a shard's identities (a hub's snapshot).
func (s *Service) ListIdentities(ctx context.Context, shard, token string, limit int) ([]*registry.Identity, string, error) {
	return s.Store.ListIdentities(ctx, shard, token, limit)
}

// Changed is closed on this replica's next registry write (a wake-up for
// assignment streams), or nil when the store cannot tell.
func (s *Service) Changed() <-chan struct{} {
	if c, ok := s.Store.(interface{ Changed() <-chan struct{} }); ok {
		return c.Changed()
	}
	return nil
}
