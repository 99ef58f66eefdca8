package allocation_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/internal/fault"
)

func shards(n, weight int) []*allocation.Shard {
	var out []*allocation.Shard
	for i := range n {
		out = append(out, &allocation.Shard{ID: fmt.Sprintf("shard-%02d", i), Hostname: "h.example.com", Weight: weight, State: allocation.Active})
	}
	return out
}

func assign(t *testing.T, n int, ss []*allocation.Shard) map[string]string {
	t.Helper()
	out := make(map[string]string, n)
	for i := range n {
		key := fmt.Sprintf("device-%06d", i)
		s, err := allocation.Hashed(key, ss)
		if err != nil {
			t.Fatal(err)
		}
		out[key] = s.ID
	}
	return out
}

func TestHashedIsDeterministic(t *testing.T) {
	ss := shards(7, 10)
	a := assign(t, 2000, ss)
	// Order of the shard list must not matter.
	rev := make([]*allocation.Shard, len(ss))
	for i, s := range ss {
		rev[len(ss)-1-i] = s
	}
	b := assign(t, 2000, rev)
	for k, v := range a {
		if b[k] != v {
			t.Fatalf("%s: %s then %s", k, v, b[k])
		}
	}
}

func TestHashedHonoursWeights(t *testing.T) {
	ss := []*allocation.Shard{
		{ID: "small", Weight: 100, State: allocation.Active},
		{ID: "medium", Weight: 300, State: allocation.Active},
		{ID: "large", Weight: 600, State: allocation.Active},
	}
	const n = 30000
	counts := map[string]int{}
	for _, v := range assign(t, n, ss) {
		counts[v]++
	}
	for _, s := range ss {
		p := float64(s.Weight) / 1000
		want := p * n
		sigma := math.Sqrt(n * p * (1 - p))
		if got := float64(counts[s.ID]); math.Abs(got-want) > 5*sigma {
			t.Errorf("%s: %v devices, want %v ± %v", s.ID, got, want, 5*sigma)
		}
	}
}

// TestHashedMovesOnlyWhatItMust: adding an 11th equal shard to 10 moves
// about 1/11 of the devices, all of them onto the new shard; removing a
// shard moves only its own devices.
func TestHashedMovesOnlyWhatItMust(t *testing.T) {
	const n = 22000
	ten := shards(10, 50)
	before := assign(t, n, ten)
	eleven := append(shards(10, 50), &allocation.Shard{ID: "shard-new", Weight: 50, State: allocation.Active})
	after := assign(t, n, eleven)
	moved := 0
	for k, v := range before {
		if after[k] != v {
			moved++
			if after[k] != "shard-new" {
				t.Fatalf("%s moved from %s to %s, not to the new shard", k, v, after[k])
			}
		}
	}
	frac := float64(moved) / n
	if frac < 1.0/11-0.01 || frac > 1.0/11+0.01 {
		t.Fatalf("%.4f of devices moved, want about %.4f", frac, 1.0/11)
	}
	t.Logf("adding an 11th shard moved %.2f%% of %d devices (ideal %.2f%%)", 100*frac, n, 100.0/11)

	nine := shards(10, 50)[1:]
	after = assign(t, n, nine)
	for k, v := range before {
		if v != "shard-00" && after[k] != v {
			t.Fatalf("%s moved from %s to %s although its shard stayed", k, v, after[k])
		}
	}
}

func TestHashedSkipsDrainingAndDisabled(t *testing.T) {
	ss := shards(3, 10)
	ss[0].State = allocation.Draining
	ss[1].State = allocation.Disabled
	for k, v := range assign(t, 500, ss) {
		if v != "shard-02" {
			t.Fatalf("%s went to %s", k, v)
		}
	}
	ss[2].State = allocation.Draining
	if _, err := allocation.Hashed("x", ss); fault.ReasonOf(err) != fault.NoShardAvailable {
		t.Fatalf("no active shard: %v", err)
	}
	if _, err := allocation.Hashed("x", nil); fault.ReasonOf(err) != fault.NoShardAvailable {
		t.Fatalf("no shard at all: %v", err)
	}
}

func TestStatic(t *testing.T) {
	ss := shards(2, 1)
	if s, err := allocation.Static("shard-01", ss); err != nil || s.ID != "shard-01" {
		t.Fatalf("Static = %v, %v", s, err)
	}
	ss[1].State = allocation.Draining
	if _, err := allocation.Static("shard-01", ss); fault.ReasonOf(err) != fault.NoShardAvailable {
		t.Fatalf("draining static shard: %v", err)
	}
	if _, err := allocation.Static("nope", ss); fault.ReasonOf(err) != fault.NoShardAvailable {
		t.Fatalf("missing static shard: %v", err)
	}
}

func TestShardValidate(t *testing.T) {
	good := allocation.Shard{Hostname: "hub-1.eu.example.com", Weight: 1000, State: allocation.Draining}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*allocation.Shard){
		"weight0":     func(s *allocation.Shard) { s.Weight = 0 },
		"weight1001":  func(s *allocation.Shard) { s.Weight = 1001 },
		"state":       func(s *allocation.Shard) { s.State = "paused" },
		"empty host":  func(s *allocation.Shard) { s.Hostname = "" },
		"trailing -":  func(s *allocation.Shard) { s.Hostname = "a-.example.com" },
		"trailing .":  func(s *allocation.Shard) { s.Hostname = "a.example.com." },
		"space":       func(s *allocation.Shard) { s.Hostname = "a b.com" },
		"too long":    func(s *allocation.Shard) { s.Hostname = fmt.Sprintf("%0254d", 0) },
		"label of 64": func(s *allocation.Shard) { s.Hostname = fmt.Sprintf("%064d.com", 0) },
	} {
		s := good
		mut(&s)
		if err := s.Validate(); fault.KindOf(err) != fault.InvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzValidateHostname(f *testing.F) {
	for _, s := range []string{"a.example.com", "-a", "a..b", "xn--bcher-kva.example", "", "a_b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if allocation.ValidateHostname(h) != nil {
			return
		}
		if len(h) == 0 || len(h) > allocation.MaxHostnameLength || h[0] == '-' || h[0] == '.' || h[len(h)-1] == '-' || h[len(h)-1] == '.' {
			t.Fatalf("accepted %q", h)
		}
		for _, c := range h {
			if !(c == '.' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				t.Fatalf("accepted %q with %q", h, c)
			}
		}
	})
}

func BenchmarkHashed(b *testing.B) {
	ss := shards(20, 100)
	for i := 0; b.Loop(); i++ {
		if _, err := allocation.Hashed(fmt.Sprintf("device-%d", i), ss); err != nil {
			b.Fatal(err)
		}
	}
}

// Capacity is honoured: filling shards one device at a time never puts a
// device on a full shard, every shard ends at its capacity, and the last
// device finds no room.
func TestHashedHonoursCapacity(t *testing.T) {
	ss := shards(4, 10)
	caps := []int{5, 10, 20, 1}
	total := 0
	for i, s := range ss {
		s.Capacity = caps[i]
		total += caps[i]
	}
	for i := range total {
		s, err := allocation.Hashed(fmt.Sprintf("dev-%d", i), ss)
		if err != nil {
			t.Fatalf("device %d of %d: %v", i, total, err)
		}
		if s.Full() {
			t.Fatalf("device %d went to full shard %s", i, s.ID)
		}
		s.Devices++
	}
	for _, s := range ss {
		if s.Devices != s.Capacity {
			t.Errorf("shard %s holds %d, capacity %d", s.ID, s.Devices, s.Capacity)
		}
	}
	if _, err := allocation.Hashed("one-too-many", ss); fault.ReasonOf(err) != fault.NoShardAvailable {
		t.Fatalf("full fleet: %v", err)
	}
	// Static refuses a full shard.
	if _, err := allocation.Static(ss[3].ID, ss); fault.ReasonOf(err) != fault.NoShardAvailable {
		t.Fatalf("static on a full shard: %v", err)
	}
}

// Geo: the client's region first, hashing among its shards; then the next
// preferred region when a region has no usable shard; then any shard.
func TestGeo(t *testing.T) {
	mk := func(id, region string, st allocation.State) *allocation.Shard {
		return &allocation.Shard{ID: id, Hostname: "h.example.com", Weight: 1, State: st, Region: region}
	}
	ss := []*allocation.Shard{
		mk("eu-1", "eu-west", allocation.Active), mk("eu-2", "eu-west", allocation.Active),
		mk("us-1", "us-east", allocation.Active), mk("ap-1", "ap-south", allocation.Active), mk("none-1", "", allocation.Active),
	}
	seen := map[string]int{}
	for i := range 400 {
		key := fmt.Sprintf("d-%d", i)
		s, err := allocation.Geo(key, []string{"eu-west", "us-east"}, ss)
		if err != nil {
			t.Fatal(err)
		}
		if s.Region != "eu-west" {
			t.Fatalf("%s went to %s, want eu-west", key, s.ID)
		}
		again, _ := allocation.Geo(key, []string{"eu-west", "us-east"}, ss)
		if again.ID != s.ID {
			t.Fatalf("geo is not deterministic for %s", key)
		}
		seen[s.ID]++
	}
	if seen["eu-1"] < 150 || seen["eu-2"] < 150 {
		t.Fatalf("hashing among the region's shards: %v", seen)
	}
	// The region fails (draining, disabled, full): the next one takes over.
	ss[0].State, ss[1].State = allocation.Draining, allocation.Disabled
	if s, _ := allocation.Geo("x", []string{"eu-west", "us-east"}, ss); s.ID != "us-1" {
		t.Fatalf("failed region: got %s, want us-1", s.ID)
	}
	ss[2].Capacity, ss[2].Devices = 3, 3
	s, err := allocation.Geo("x", []string{"eu-west", "us-east"}, ss)
	if err != nil || s.Region == "eu-west" || s.ID == "us-1" {
		t.Fatalf("both preferred regions unusable: %v %v", s, err)
	}
	// An unknown client region falls back to any shard.
	if s, err := allocation.Geo("x", []string{"mars"}, ss); err != nil || s == nil {
		t.Fatalf("unknown region: %v %v", s, err)
	}
	for _, bad := range []string{"EU", "eu_west", "", string(make([]byte, 65))} {
		if allocation.ValidateRegion(bad) == nil {
			t.Errorf("region %q accepted", bad)
		}
	}
}
