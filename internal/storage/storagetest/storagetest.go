// Package storagetest is the conformance suite every store backend must
// pass: not-found, already-exists, uniqueness of indexes, compare-and-swap
// under concurrent writers, paging, atomic registration writes, context
// cancellation and idempotent Close. A backend's test calls Run with a
// function that returns a fresh, empty store.
package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/attestation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/attempts"
	"github.com/zerotouch/zerotouch/internal/audit"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/ipfilter"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/docs"
)

// Store is everything a backend implements.
type Store interface {
	attestation.ChallengeStore
	enrollment.Store
	allocation.Store
	allocation.ClusterStore
	registry.Store
	access.Store
	audit.Store
	attempts.Store
	ipfilter.Store
	docs.Docs
	// GroupsVersion changes on every group write (provisioning's cache).
	GroupsVersion(ctx context.Context) (uint64, error)
	// TrustVersion changes on every CA or group write (provisioning's
	// cache of them).
	TrustVersion(ctx context.Context) (uint64, error)
	Close() error
}

// NewFunc returns a fresh, empty store; the suite closes it.
type NewFunc func(t *testing.T) Store

// Run runs the whole suite.
func Run(t *testing.T, newStore NewFunc) {
	tests := []struct {
		name string
		fn   func(*testing.T, Store)
	}{
		{"CACreateGet", testCACreateGet},
		{"CAUniqueness", testCAUniqueness},
		{"CAUpdateCAS", testCAUpdateCAS},
		{"CADeleteInUse", testCADeleteInUse},
		{"CAList", testCAList},
		{"GroupCreateRules", testGroupCreateRules},
		{"GroupUpdateDelete", testGroupUpdateDelete},
		{"IndividualCRUD", testIndividualCRUD},
		{"IndividualNames", testIndividualNames},
		{"IndividualPages", testIndividualPages},
		{"ShardCRUD", testShardCRUD},
		{"RegistrationCreate", testRegistrationCreate},
		{"RegistrationConcurrentCreate", testRegistrationConcurrentCreate},
		{"RegistrationUpdateDelete", testRegistrationUpdateDelete},
		{"RegistrationList", testRegistrationList},
		{"AccessKeys", testAccessKeys},
		{"ShardDeviceCounts", testShardDeviceCounts},
		{"Clusters", testClusters},
		{"GroupsVersion", testGroupsVersion},
		{"TrustVersion", testTrustVersion},
		{"AllShardsFollowWrites", testAllShardsFollowWrites},
		{"EventLog", testEventLog},
		{"EventRetention", testEventRetention},
		{"EventAcks", testEventAcks},
		{"ListIdentities", testListIdentities},
		{"ChallengeSingleUse", testChallengeSingleUse},
		{"ChallengeExpiry", testChallengeExpiry},
		{"AuditChain", testAuditChain},
		{"AuditPrune", testAuditPrune},
		{"FailedAttempts", testAttempts},
		{"IPFilter", testIPFilter},
		{"Docs", testDocs},
		{"IssuedCertificates", testIssuedCertificates},
		{"CertIndex", testCertIndex},
		{"Cancelled", testCancelled},
		{"CloseTwice", testCloseTwice},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func wantKind(t *testing.T, err error, kind fault.Kind, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want %v", what, kind)
	}
	if got := fault.KindOf(err); got != kind {
		t.Fatalf("%s: got %v (%v), want %v", what, got, err, kind)
	}
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func hashed(shards ...string) enrollment.Allocation {
	return enrollment.Allocation{Policy: enrollment.PolicyHashed, Shards: shards}
}

func testCancelled(t *testing.T, s Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.CreateCA(ctx, newCA(t, "root", "Root")); err == nil {
		t.Fatal("CreateCA with a cancelled context succeeded")
	}
	if _, err := s.GetCA(t.Context(), "root"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("cancelled create left state: %v", err)
	}
	reg, id := newRegistration("dev", "s1")
	if _, err := s.CreateRegistration(ctx, reg, id); err == nil {
		t.Fatal("CreateRegistration with a cancelled context succeeded")
	}
}

func testCloseTwice(t *testing.T, s Store) {
	must(t, s.Close(), "Close")
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
