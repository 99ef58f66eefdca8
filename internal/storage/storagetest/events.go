package storagetest

import (
	"sort"

	"fmt"
	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"testing"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// wantEvents reads the shard's whole log after `after` and checks the
// kinds, the devices and that seqs follow on with no gap.
func wantEvents(t *testing.T, s Store, shard string, after uint64, want ...string) []*registry.Event {
	t.Helper()
	evs, err := s.ReadEvents(t.Context(), shard, after, 1000)
	must(t, err, "ReadEvents "+shard)
	var got []string
	for i, ev := range evs {
		got = append(got, string(ev.Kind)+" "+ev.Identity.DeviceID)
		if ev.Seq != after+uint64(i)+1 || ev.Shard != shard || ev.Identity.Shard != shard || ev.Time.IsZero() {
			t.Errorf("%s: event %d is %+v (seq %d, shard %q)", shard, i, ev, ev.Seq, ev.Shard)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s after %d: events %q, want %q", shard, after, got, want)
	}
	return evs
}

func wantHead(t *testing.T, s Store, shard string, want uint64) {
	t.Helper()
	head, err := s.LogHead(t.Context(), shard)
	must(t, err, "LogHead")
	if head != want {
		t.Fatalf("head of %s = %d, want %d", shard, head, want)
	}
}

// testEventLog: every registration write appends its events in the same
// step, failed writes append nothing, a move is a delete on the old shard
// and a create on the new one, and cursors page through the log.
func testEventLog(t *testing.T, s Store) {
	ctx := t.Context()
	ensureShards(t, s, "s1", "s2")
	wantHead(t, s, "s1", 0)
	wantEvents(t, s, "s1", 0)

	reg, id := newRegistration("dev-1", "s1")
	etag, err := s.CreateRegistration(ctx, reg, id)
	must(t, err, "CreateRegistration")
	_, err = s.CreateRegistration(ctx, reg, id)
	wantKind(t, err, fault.AlreadyExists, "CreateRegistration(again)")
	reg.Etag = etag

	step := func(what string, change func()) {
		t.Helper()
		change()
		id.Version++
		e, err := s.UpdateRegistration(ctx, reg, id)
		must(t, err, "UpdateRegistration "+what)
		reg.Etag = e
	}
	step("disable", func() { id.Status = registry.IdentityDisabled })
	step("enable", func() { id.Status = registry.IdentityEnabled })
	step("twin", func() { id.InitialTwin = []byte(`{"tags":{"x":1}}`) })
	stale := *reg
	stale.Etag = etag
	_, err = s.UpdateRegistration(ctx, &stale, id)
	wantKind(t, err, fault.Conflict, "UpdateRegistration(stale)")
	step("move", func() { reg.Shard, id.Shard = "s2", "s2" })

	evs := wantEvents(t, s, "s1", 0, "created dev-1", "disabled dev-1", "enabled dev-1", "updated dev-1", "deleted dev-1")
	if evs[0].Identity.Version != 1 || evs[3].Identity.Version != 4 || string(evs[3].Identity.InitialTwin) != `{"tags":{"x":1}}` {
		t.Fatalf("event identities: %+v %+v", evs[0].Identity, evs[3].Identity)
	}
	if evs[4].Identity.Version != 5 || evs[4].Identity.Shard != "s1" {
		t.Fatalf("a move's delete carries the new version and the old shard: %+v", evs[4].Identity)
	}
	wantEvents(t, s, "s2", 0, "created dev-1")
	wantHead(t, s, "s1", 5)
	heads, err := s.LogHeads(ctx, []string{"s2", "nowhere", "s1"})
	must(t, err, "LogHeads")
	if fmt.Sprint(heads) != "[1 0 5]" {
		t.Fatalf("LogHeads = %v, want [1 0 5]", heads)
	}

	// Paging with a cursor.
	page, err := s.ReadEvents(ctx, "s1", 1, 2)
	must(t, err, "ReadEvents(page)")
	if len(page) != 2 || page[0].Seq != 2 || page[1].Seq != 3 {
		t.Fatalf("page after 1: %+v", page)
	}
	wantEvents(t, s, "s1", 5)

	// A cursor the log never reached is refused.
	_, err = s.ReadEvents(ctx, "s1", 6, 10)
	wantReason(t, err, fault.CursorExpired, "ReadEvents(beyond head)")
	_, err = s.ReadEvents(ctx, "nowhere", 3, 10)
	wantReason(t, err, fault.CursorExpired, "ReadEvents(unknown shard)")

	wantKind(t, s.DeleteRegistration(ctx, "dev-1", "stale"), fault.Conflict, "DeleteRegistration(stale)")
	wantHead(t, s, "s2", 1)
	must(t, s.DeleteRegistration(ctx, "dev-1", ""), "DeleteRegistration")
	evs = wantEvents(t, s, "s2", 1, "deleted dev-1")
	if evs[0].Identity.Version <= 5 {
		t.Fatalf("a deletion's version must exceed the last one: %d", evs[0].Identity.Version)
	}
}

func wantReason(t *testing.T, err error, r fault.Reason, what string) {
	t.Helper()
	if fault.ReasonOf(err) != r {
		t.Fatalf("%s: got %v, want reason %s", what, err, r)
	}
}

// testEventRetention: a log keeps its newest events; a cursor before them
// is CURSOR_EXPIRED, one at the edge still reads.
func testEventRetention(t *testing.T, s Store) {
	r, ok := s.(interface{ SetEventRetention(int) })
	if !ok {
		t.Fatal("the store has no SetEventRetention")
	}
	r.SetEventRetention(5)
	ensureShards(t, s, "s1")
	for i := range 12 {
		reg, id := newRegistration(fmt.Sprintf("dev-%02d", i), "s1")
		_, err := s.CreateRegistration(t.Context(), reg, id)
		must(t, err, "CreateRegistration")
	}
	wantHead(t, s, "s1", 12)
	_, err := s.ReadEvents(t.Context(), "s1", 0, 10)
	wantReason(t, err, fault.CursorExpired, "ReadEvents(from the start)")
	_, err = s.ReadEvents(t.Context(), "s1", 6, 10)
	wantReason(t, err, fault.CursorExpired, "ReadEvents(after 6)")
	wantEvents(t, s, "s1", 7, "created dev-07", "created dev-08", "created dev-09", "created dev-10", "created dev-11")
	wantEvents(t, s, "s1", 12)
}

// testEventAcks: acknowledgements are per cluster and shard.
func testEventAcks(t *testing.T, s Store) {
	ctx := t.Context()
	must(t, s.AckEvents(ctx, "c1", "s1", 7), "AckEvents")
	must(t, s.AckEvents(ctx, "c1", "s2", 3), "AckEvents")
	must(t, s.AckEvents(ctx, "c1", "s1", 9), "AckEvents")
	for _, c := range []struct {
		cluster, shard string
		want           uint64
	}{{"c1", "s1", 9}, {"c1", "s2", 3}, {"c2", "s1", 0}, {"c1", "s3", 0}} {
		got, err := s.AckedEvent(ctx, c.cluster, c.shard)
		must(t, err, "AckedEvent")
		if got != c.want {
			t.Errorf("acked %s/%s = %d, want %d", c.cluster, c.shard, got, c.want)
		}
	}
}

// testListIdentities pages through a shard's identities.
func testListIdentities(t *testing.T, s Store) {
	ctx := t.Context()
	ensureShards(t, s, "s1", "s2")
	want := map[string]bool{}
	for i := range 7 {
		shard := "s1"
		if i%3 == 0 {
			shard = "s2"
		} else {
			want[fmt.Sprintf("dev-%d", i)] = true
		}
		reg, id := newRegistration(fmt.Sprintf("dev-%d", i), shard)
		_, err := s.CreateRegistration(ctx, reg, id)
		must(t, err, "CreateRegistration")
	}
	got := map[string]bool{}
	token := ""
	for range 10 {
		ids, next, err := s.ListIdentities(ctx, "s1", token, 2)
		must(t, err, "ListIdentities")
		for _, id := range ids {
			if id.Shard != "s1" || got[id.DeviceID] {
				t.Fatalf("listed %+v (twice: %v)", id, got[id.DeviceID])
			}
			got[id.DeviceID] = true
		}
		if token = next; token == "" {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("identities on s1: %v, want %v", got, want)
	}
}

// testGroupsVersion: every group write (and only a write) moves the
// groups version, including a failed-then-retried sequence.
func testGroupsVersion(t *testing.T, s Store) {
	ctx := t.Context()
	seen := map[uint64]bool{}
	step := func(what string, write func() error, moves bool) {
		t.Helper()
		before, err := s.GroupsVersion(ctx)
		must(t, err, "GroupsVersion")
		seen[before] = true
		werr := write()
		after, err := s.GroupsVersion(ctx)
		must(t, err, "GroupsVersion")
		if moved := after != before; moved != moves || moves && seen[after] {
			t.Fatalf("%s (%v): version %d → %d, want moved=%v to a new value", what, werr, before, after, moves)
		}
	}
	g := &enrollment.Group{ID: "sym", Mechanism: enrollment.MechanismSymmetricKey, SealedKeys: []byte("sealed"), Allocation: hashed(), Meta: enrollment.Meta{Created: t0, Updated: t0}}
	var etag string
	step("create", func() (err error) { etag, err = s.CreateGroup(ctx, g); return err }, true)
	step("create again (refused)", func() error { _, err := s.CreateGroup(ctx, g); return err }, false)
	step("read", func() error { _, err := s.GetGroup(ctx, "sym"); return err }, false)
	upd := *g
	upd.Etag, upd.Disabled = etag, true
	step("update", func() (err error) { etag, err = s.UpdateGroup(ctx, &upd); return err }, true)
	step("update with a stale etag (refused)", func() error { _, err := s.UpdateGroup(ctx, &upd); return err }, false)
	step("an individual enrollment", func() error {
		_, err := s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: "dev", Thumbprint: enrollment.Thumbprint([]byte("x")), Allocation: hashed()})
		return err
	}, false)
	step("delete", func() error { return s.DeleteGroup(ctx, "sym", etag) }, true)
}

// testAllShardsFollowWrites: AllShards reflects every shard write at once
// (stores may keep decoded shards between calls).
func testAllShardsFollowWrites(t *testing.T, s Store) {
	ctx := t.Context()
	list := func() string {
		t.Helper()
		all, err := s.AllShards(ctx)
		must(t, err, "AllShards")
		var out []string
		for _, sh := range all {
			out = append(out, fmt.Sprintf("%s:%d:%s", sh.ID, sh.Weight, sh.State)) // counts: ShardDeviceCounts
		}
		sort.Strings(out)
		return fmt.Sprint(out)
	}
	ensureShards(t, s, "a", "b")
	if got := list(); got != "[a:1:active b:1:active]" {
		t.Fatalf("after create: %s", got)
	}
	a, err := s.GetShard(ctx, "a")
	must(t, err, "GetShard")
	a.Weight, a.State = 7, allocation.Draining
	_, err = s.UpdateShard(ctx, a)
	must(t, err, "UpdateShard")
	if got := list(); got != "[a:7:draining b:1:active]" {
		t.Fatalf("after update: %s", got)
	}
	cur, err := s.GetShard(ctx, "a")
	must(t, err, "GetShard")
	must(t, s.DeleteShard(ctx, "a", cur.Etag), "DeleteShard")
	ensureShards(t, s, "c")
	if got := list(); got != "[b:1:active c:1:active]" {
		t.Fatalf("after delete and create: %s", got)
	}
}

// testTrustVersion: every write of a CA certificate or an enrollment group
// moves TrustVersion to a value it never had; other writes do not.
func testTrustVersion(t *testing.T, s Store) {
	ctx := t.Context()
	seen := map[uint64]bool{}
	step := func(what string, write func() error, moves bool) {
		t.Helper()
		before, err := s.TrustVersion(ctx)
		must(t, err, "TrustVersion")
		seen[before] = true
		werr := write()
		after, err := s.TrustVersion(ctx)
		must(t, err, "TrustVersion")
		if moved := after != before; moved != moves || moves && seen[after] {
			t.Fatalf("%s (%v): version %d → %d, want moved=%v to a new value", what, werr, before, after, moves)
		}
	}
	ca := newCA(t, "trust-root", "Trust Root")
	var caEtag, gEtag string
	step("create a CA", func() (err error) { caEtag, err = s.CreateCA(ctx, ca); return err }, true)
	upd := *ca
	upd.Etag, upd.Verified = caEtag, true
	step("verify it", func() (err error) { caEtag, err = s.UpdateCA(ctx, &upd); return err }, true)
	g := &enrollment.Group{ID: "trust-g", CAName: "trust-root", Allocation: hashed(), Meta: enrollment.Meta{Created: t0, Updated: t0}}
	step("create its group", func() (err error) { gEtag, err = s.CreateGroup(ctx, g); return err }, true)
	gu := *g
	gu.Etag, gu.Disabled = gEtag, true
	step("disable the group", func() (err error) { gEtag, err = s.UpdateGroup(ctx, &gu); return err }, true)
	step("read", func() error { _, err := s.FindCAByThumbprint(ctx, ca.Thumbprint); return err }, false)
	step("an individual enrollment", func() error {
		_, err := s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: "trust-dev", Thumbprint: enrollment.Thumbprint([]byte("t")), Allocation: hashed()})
		return err
	}, false)
	step("delete the group", func() error { return s.DeleteGroup(ctx, "trust-g", gEtag) }, true)
	step("delete the CA", func() error { return s.DeleteCA(ctx, "trust-root", caEtag) }, true)
}
