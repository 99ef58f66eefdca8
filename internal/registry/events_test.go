package registry

import (
	"testing"
	"time"
)

func TestNextVersionNeverGoesBack(t *testing.T) {
	now := time.Now()
	v := NextVersion(0, now)
	if v != now.UnixMicro() {
		t.Fatalf("first version %d, want the clock %d", v, now.UnixMicro())
	}
	if w := NextVersion(v, now.Add(-time.Hour)); w != v+1 {
		t.Fatalf("with the clock behind: %d, want %d", w, v+1)
	}
	if w := NextVersion(v, now.Add(time.Second)); w != now.Add(time.Second).UnixMicro() {
		t.Fatalf("with the clock ahead: %d", w)
	}
}

func TestCheckCursor(t *testing.T) {
	for _, c := range []struct {
		after, first, head uint64
		ok                 bool
	}{
		{0, 0, 0, true},   // empty log, new hub
		{0, 1, 5, true},   // whole log kept
		{3, 4, 9, true},   // the next event is the oldest kept
		{2, 4, 9, false},  // event 3 was trimmed
		{9, 4, 9, true},   // up to date
		{10, 4, 9, false}, // beyond the head
		{5, 0, 9, false},  // everything trimmed
		{9, 0, 9, true},   // up to date with everything trimmed
		{0, 0, 3, false},  // events existed, none kept
		{1, 0, 0, false},  // a cursor on a log that never had events
		{0, 100, 200, false},
	} {
		if got := CheckCursor(c.after, c.first, c.head); got != c.ok {
			t.Errorf("CheckCursor(after %d, first %d, head %d) = %v, want %v", c.after, c.first, c.head, got, c.ok)
		}
	}
}

func TestChangesKinds(t *testing.T) {
	now := time.Now()
	a := &Identity{DeviceID: "d", Shard: "s1", Status: IdentityEnabled, Version: 1}
	dis := *a
	dis.Status, dis.Version = IdentityDisabled, 2
	moved := dis
	moved.Shard, moved.Version = "s2", 3
	for name, c := range map[string]struct {
		old, new *Identity
		want     []string
	}{
		"create":  {nil, a, []string{"created s1"}},
		"disable": {a, &dis, []string{"disabled s1"}},
		"enable":  {&dis, a, []string{"enabled s1"}},
		"update":  {a, a, []string{"updated s1"}},
		"move":    {&dis, &moved, []string{"deleted s1", "created s2"}},
		"delete":  {a, nil, []string{"deleted s1"}},
		"nothing": {nil, nil, nil},
	} {
		evs := Changes(c.old, c.new, now)
		var got []string
		for _, ev := range evs {
			got = append(got, string(ev.Kind)+" "+ev.Shard)
		}
		if len(got) != len(c.want) || (len(got) > 0 && got[0] != c.want[0]) || (len(got) > 1 && got[1] != c.want[1]) {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
	if d := Changes(a, nil, now)[0]; d.Identity.Version <= a.Version || a.Version != 1 {
		t.Errorf("a deletion's version %d must exceed %d without changing the input", d.Identity.Version, a.Version)
	}
	if m := Changes(&dis, &moved, now); m[0].Identity.Version != moved.Version || m[0].Identity.Shard != "s1" {
		t.Errorf("a move's deletion: %+v", m[0].Identity)
	}
}
