package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/attestation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/provisioning"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// storeOp times one store operation; its series are resolved once, so a
// call costs a clock read and two atomic adds.
type storeOp struct {
	seconds prometheus.Observer
	errors  prometheus.Counter
}

func (m *Metrics) op(name string) *storeOp {
	return &storeOp{seconds: m.storeSeconds.WithLabelValues(name), errors: m.storeErrors.WithLabelValues(name)}
}

// done records a call that started at start; defer it with the call's
// named error.
func (o *storeOp) done(start time.Time, err *error) {
	o.seconds.Observe(time.Since(start).Seconds())
	if storeFailed(*err) {
		o.errors.Inc()
	}
}

// The wrappers below time the calls the registration use case makes of
// its stores (every call a registration makes). Methods the use case does
// not call pass through untimed (the embedded interface).

// Enrollments times a registration's enrollment reads.
func (m *Metrics) Enrollments(next provisioning.EnrollmentStore) provisioning.EnrollmentStore {
	return &enrollments{EnrollmentStore: next,
		findIndividual: m.op("find_individual_by_thumbprint"), findCA: m.op("find_ca_by_thumbprint"),
		findCAs: m.op("find_cas_by_subject"), findGroup: m.op("find_group_by_ca"), getGroup: m.op("get_group"),
		listGroups: m.op("list_groups"), getIndividual: m.op("get_individual"), reserved: m.op("reserved_by_individual"),
		groupsVersion: m.op("groups_version"), trustVersion: m.op("trust_version"), listCAs: m.op("list_cas")}
}

type enrollments struct {
	provisioning.EnrollmentStore
	findIndividual, findCA, findCAs, findGroup, getGroup, listGroups, getIndividual, reserved, groupsVersion *storeOp
	trustVersion, listCAs                                                                                    *storeOp
}

func (s *enrollments) TrustVersion(ctx context.Context) (_ uint64, err error) {
	defer s.trustVersion.done(time.Now(), &err)
	return s.EnrollmentStore.TrustVersion(ctx)
}

func (s *enrollments) ListCAs(ctx context.Context, p enrollment.Page) (_ []*enrollment.CA, _ string, err error) {
	defer s.listCAs.done(time.Now(), &err)
	return s.EnrollmentStore.ListCAs(ctx, p)
}

func (s *enrollments) FindIndividualByThumbprint(ctx context.Context, thumbprint string) (_ *enrollment.Individual, err error) {
	defer s.findIndividual.done(time.Now(), &err)
	return s.EnrollmentStore.FindIndividualByThumbprint(ctx, thumbprint)
}

func (s *enrollments) FindCAByThumbprint(ctx context.Context, thumbprint string) (_ *enrollment.CA, err error) {
	defer s.findCA.done(time.Now(), &err)
	return s.EnrollmentStore.FindCAByThumbprint(ctx, thumbprint)
}

func (s *enrollments) FindCAsBySubject(ctx context.Context, subjectKey string) (_ []*enrollment.CA, err error) {
	defer s.findCAs.done(time.Now(), &err)
	return s.EnrollmentStore.FindCAsBySubject(ctx, subjectKey)
}

func (s *enrollments) FindGroupByCA(ctx context.Context, caName string) (_ *enrollment.Group, err error) {
	defer s.findGroup.done(time.Now(), &err)
	return s.EnrollmentStore.FindGroupByCA(ctx, caName)
}

func (s *enrollments) GetGroup(ctx context.Context, id string) (_ *enrollment.Group, err error) {
	defer s.getGroup.done(time.Now(), &err)
	return s.EnrollmentStore.GetGroup(ctx, id)
}

func (s *enrollments) ListGroups(ctx context.Context, p enrollment.Page) (_ []*enrollment.Group, _ string, err error) {
	defer s.listGroups.done(time.Now(), &err)
	return s.EnrollmentStore.ListGroups(ctx, p)
}

func (s *enrollments) GetIndividual(ctx context.Context, registrationID string) (_ *enrollment.Individual, err error) {
	defer s.getIndividual.done(time.Now(), &err)
	return s.EnrollmentStore.GetIndividual(ctx, registrationID)
}

func (s *enrollments) ReservedByIndividual(ctx context.Context, name string) (_ bool, err error) {
	defer s.reserved.done(time.Now(), &err)
	return s.EnrollmentStore.ReservedByIndividual(ctx, name)
}

func (s *enrollments) GroupsVersion(ctx context.Context) (_ uint64, err error) {
	defer s.groupsVersion.done(time.Now(), &err)
	return s.EnrollmentStore.GroupsVersion(ctx)
}

// Registry times a registration's registry reads and writes.
func (m *Metrics) Registry(next registry.Store) registry.Store {
	r := &registryStore{Store: next, create: m.op("create_registration"), update: m.op("update_registration"),
		get: m.op("get_registration"), identity: m.op("get_identity")}
	if ra, ok := next.(registry.ReadAheader); ok {
		return &readAheadStore{registryStore: r, next: ra, op: m.op("read_ahead")}
	}
	return r
}

// readAheadStore is the wrapper of a store that reads ahead (Redis).
type readAheadStore struct {
	*registryStore
	next registry.ReadAheader
	op   *storeOp
}

func (s *readAheadStore) ReadAhead(ctx context.Context, a registry.Ahead) context.Context {
	var err error
	defer s.op.done(time.Now(), &err)
	return s.next.ReadAhead(ctx, a)
}

type registryStore struct {
	registry.Store
	create, update, get, identity *storeOp
}

func (s *registryStore) CreateRegistration(ctx context.Context, reg *registry.Registration, id *registry.Identity) (_ string, err error) {
	defer s.create.done(time.Now(), &err)
	return s.Store.CreateRegistration(ctx, reg, id)
}

func (s *registryStore) UpdateRegistration(ctx context.Context, reg *registry.Registration, id *registry.Identity) (_ string, err error) {
	defer s.update.done(time.Now(), &err)
	return s.Store.UpdateRegistration(ctx, reg, id)
}

func (s *registryStore) GetRegistration(ctx context.Context, registrationID string) (_ *registry.Registration, err error) {
	defer s.get.done(time.Now(), &err)
	return s.Store.GetRegistration(ctx, registrationID)
}

func (s *registryStore) GetIdentity(ctx context.Context, deviceID string) (_ *registry.Identity, err error) {
	defer s.identity.done(time.Now(), &err)
	return s.Store.GetIdentity(ctx, deviceID)
}

// Shards times allocation's read of the shards.
func (m *Metrics) Shards(next provisioning.ShardSource) provisioning.ShardSource {
	return &shardSource{next: next, all: m.op("all_shards")}
}

type shardSource struct {
	next provisioning.ShardSource
	all  *storeOp
}

func (s *shardSource) AllShards(ctx context.Context) (_ []*allocation.Shard, err error) {
	defer s.all.done(time.Now(), &err)
	return s.next.AllShards(ctx)
}

// Challenges times the TPM challenge store.
func (m *Metrics) Challenges(next attestation.ChallengeStore) attestation.ChallengeStore {
	return &challenges{next: next, put: m.op("put_challenge"), take: m.op("take_challenge")}
}

type challenges struct {
	next      attestation.ChallengeStore
	put, take *storeOp
}

func (s *challenges) PutChallenge(ctx context.Context, c *attestation.Challenge) (err error) {
	defer s.put.done(time.Now(), &err)
	return s.next.PutChallenge(ctx, c)
}

func (s *challenges) TakeChallenge(ctx context.Context, id string, now time.Time) (_ *attestation.Challenge, err error) {
	defer s.take.done(time.Now(), &err)
	return s.next.TakeChallenge(ctx, id, now)
}
