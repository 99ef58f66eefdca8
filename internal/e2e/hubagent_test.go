package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/hubclient"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// agent is one `zerotouch hub` process.
type agent struct {
	t                        *testing.T
	args                     []string
	state                    string
	cmd                      *exec.Cmd
	out                      *syncBuf
	starts                   int
	mu                       sync.Mutex
	certFile, keyFile, shard string
}

func startAgent(t *testing.T, server, caFile string, node *pki.Issued, shards, dir, name string, quiet bool) *agent {
	t.Helper()
	a := &agent{t: t, state: filepath.Join(dir, name+".json"), out: &syncBuf{}}
	certFile, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := node.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	a.args = []string{"hub", "--server", server, "--ca-file", caFile, "--cert", certFile, "--key", keyFile, "--state", a.state}
	if shards != "" { // else all of the cluster's shards
		a.args = append(a.args, "--shards", shards)
	}
	if quiet {
		a.args = append(a.args, "--quiet")
	}
	a.start()
	t.Cleanup(func() {
		a.kill()
		if t.Failed() {
			t.Logf("agent %s output:\n%s", name, a.out.String())
		}
	})
	return a
}

func (a *agent) start() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.starts++
	fmt.Fprintf(a.out, "--- start %d\n", a.starts)
	a.cmd = exec.Command(zerotouchBinary(a.t), a.args...)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
}

// kill stops the agent with SIGKILL: no chance to save.
func (a *agent) kill() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		a.cmd.Process.Signal(syscall.SIGKILL)
		a.cmd.Wait()
		a.cmd = nil
	}
}

// identities reads the agent's replica file: device ID → "shard version
// enabled".
func (a *agent) identities() map[string]string {
	raw, err := os.ReadFile(a.state)
	if err != nil {
		return nil
	}
	var f struct {
		Identities map[string]*hubclient.Identity `json:"identities"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		a.t.Fatalf("replica file %s: %v", a.state, err)
	}
	out := map[string]string{}
	for dev, id := range f.Identities {
		out[dev] = fmt.Sprintf("%s %d %v", id.Shard, id.Version, id.Enabled)
	}
	return out
}

// TestHubAgentsFollowThroughKills is issue 5's stream test: two Zerotouch
// replicas on one Redis, two hub agents (one per cluster), 5,000
// registrations spread over both replicas. Mid-stream the agents are
// killed (SIGKILL) and restarted, a replica is killed and restarted on the
// same address, devices are deleted, and devices move between shards and
// between clusters. Each agent must end with exactly its shards'
// identities, at their current versions: none missing, none foreign.
func TestHubAgentsFollowThroughKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two replicas, two agents and registers 5,000 devices; runs in the full suite")
	}
	c := newCluster(t, 2)
	e0, e1 := c.env(0), c.env(1)
	f := e0.newHubFleet()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pki.CertPEM(c.roots.ca.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	agentA := startAgent(t, c.replicas[0].grpcAddr, caFile, f.nodeA, "sa1,sa2", dir, "agent-a", true)
	agentB := startAgent(t, c.replicas[1].grpcAddr, caFile, f.nodeB, "", dir, "agent-b", false) // its cluster's shards; prints every event

	// Devices register over pooled connections to either replica; one
	// that fails (its replica is down) is retried on the other.
	clients := make([]*http.Client, 2)
	for i := range clients {
		tr := &http.Transport{TLSClientConfig: c.tlsConfig(), MaxIdleConnsPerHost: 8}
		t.Cleanup(tr.CloseIdleConnections)
		clients[i] = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	var down sync.Map // replica index → true while it is being restarted
	var registered progress
	// A restarted replica keeps its addresses; read them once, as the
	// restart replaces c.replicas[0] while devices register.
	httpAddrs := []string{c.replicas[0].httpAddr, c.replicas[1].httpAddr}
	register := func(i int, regID string) {
		key := symkey.DeriveDeviceKey(f.groupKey, regID)
		for attempt := range 20 {
			r := (i + attempt) % 2
			if _, isDown := down.Load(r); isDown {
				continue
			}
			req, _ := http.NewRequest("PUT", "https://"+httpAddrs[r]+"/"+idScope+"/registrations/"+regID+"/register?api-version=2021-06-01",
				strings.NewReader(`{"registrationId":"`+regID+`"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", symkey.Sign(key, idScope+"/registrations/"+regID, time.Now().Add(time.Hour), "registration"))
			res, err := clients[r].Do(req)
			if err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					registered.add()
					return
				}
				err = fmt.Errorf("%s", res.Status)
			}
			time.Sleep(100 * time.Millisecond) // backoff before the next attempt, not a wait for a condition
		}
		t.Errorf("%s never registered", regID)
	}
	// phaseAll registers devices from..to-1 with 8 workers.
	phaseAll := func(from, to int) {
		var wg sync.WaitGroup
		next := make(chan int)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					register(i, fmt.Sprintf("hub-dev-%04d", i))
				}
			}()
		}
		for i := from; i < to; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	phaseAll(0, 1500)
	agentA.kill()
	phaseAll(1500, 2500)
	agentA.start()
	agentB.kill()
	// Replica 0 is killed mid-phase (agent A is connected to it) and
	// comes back on the same address.
	// (The restart runs on the test goroutine, which may fail the test.)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		phaseAll(2500, 3500)
	}()
	if !reached(registered.reach(2700)) { // 200 devices into the phase
		t.Fatal("registrations stalled before replica 0's restart")
	}
	down.Store(0, true)
	c.restart(0)
	down.Delete(0)
	wg.Wait()
	agentB.start()

	// Moves: sa2 is disabled and 300 of its devices register again, so
	// they move to sa1 (within cluster-a) or sb1 (to cluster-b).
	// Deletions: 200 devices. Meanwhile the last 1,500 register, and
	// agent A is killed once more.
	var onSA2 []string
	store, err := redis.Open(redis.Options{Addrs: []string{c.redis.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for token := ""; ; {
		ids, next, err := store.ListIdentities(t.Context(), "sa2", token, 500)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			onSA2 = append(onSA2, id.DeviceID)
		}
		if token = next; token == "" {
			break
		}
	}
	movers := onSA2[:min(300, len(onSA2))]
	moving := map[string]bool{}
	for _, id := range movers {
		moving[id] = true
	}
	var doomed []string
	for i := 0; len(doomed) < 200; i += 7 {
		if id := fmt.Sprintf("hub-dev-%04d", i); !moving[id] {
			doomed = append(doomed, id)
		}
	}
	e1.setShardState("sa2", pb.ShardState_SHARD_STATE_DISABLED)
	base := registered.count() // this phase registers 1,800 more (1,500 new, 300 movers)
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i, id := range movers {
			register(i, id)
		}
	}()
	go func() {
		defer wg.Done()
		regs := pb.NewRegistrationServiceClient(e1.admin)
		for _, id := range doomed {
			if _, err := regs.DeleteRegistration(e1.owner(), &pb.DeleteRegistrationRequest{RegistrationId: id}); err != nil {
				t.Errorf("delete: %v", err)
			}
		}
	}()
	go func() {
		defer wg.Done()
		if !reached(registered.reach(base + 300)) {
			t.Error("registrations stalled before agent A's kill")
		}
		agentA.kill()
		if !reached(registered.reach(base + 600)) {
			t.Error("registrations stalled before agent A's restart")
		}
		agentA.start()
	}()
	phaseAll(3500, 5000)
	wg.Wait()

	// What each cluster should hold: its shards' identities in the store.
	want := map[string]map[string]string{"cluster-a": {}, "cluster-b": {}}
	total := 0
	for sh, cluster := range f.clusterOfShard {
		for token := ""; ; {
			ids, next, err := store.ListIdentities(t.Context(), sh, token, 500)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				want[cluster][id.DeviceID] = fmt.Sprintf("%s %d %v", id.Shard, id.Version, true)
				total++
			}
			if token = next; token == "" {
				break
			}
		}
	}
	if total != 4800 {
		t.Fatalf("the store holds %d identities, want 4,800 (5,000 less 200 deleted)", total)
	}
	deadline := time.Now().Add(90 * time.Second)
	for name, a := range map[string]*agent{"cluster-a": agentA, "cluster-b": agentB} {
		for {
			got := a.identities()
			if fmt.Sprint(got) == fmt.Sprint(want[name]) {
				t.Logf("%s's agent holds exactly its %d identities (started %d times)", name, len(got), a.starts)
				// Restarts resumed from the replica file's cursors: each
				// shard was snapshotted once, when the agent first started.
				if n := strings.Count(a.out.String(), "snapshot "); n != len(f.shardsOf[name]) {
					t.Errorf("%s's agent took %d snapshots, want %d (one per shard)", name, n, len(f.shardsOf[name]))
				}
				if a == agentB && !strings.Contains(a.out.String(), "applied created hub-dev-") {
					t.Errorf("agent B printed no applied events")
				}
				break
			}
			if time.Now().After(deadline) {
				var missing, foreign, stale []string
				for dev, w := range want[name] {
					switch g, ok := got[dev]; {
					case !ok:
						missing = append(missing, dev)
					case g != w:
						stale = append(stale, dev+": "+g+" want "+w)
					}
				}
				for dev := range got {
					if _, ok := want[name][dev]; !ok {
						foreign = append(foreign, dev)
					}
				}
				sort.Strings(missing)
				sort.Strings(foreign)
				t.Fatalf("%s's agent: %d identities, want %d; missing %d %.300v, foreign %d %.300v, stale %d %.300v",
					name, len(got), len(want[name]), len(missing), missing, len(foreign), foreign, len(stale), stale)
			}
			time.Sleep(200 * time.Millisecond) // poll the replica file until it converges (deadline above)
		}
	}
}

// progress counts successful registrations and lets the test wait for a
// count to be reached, so kills and restarts happen mid-stream by what
// has happened, not by the clock.
type progress struct {
	mu      sync.Mutex
	n       int
	waiters []progressWaiter
}

type progressWaiter struct {
	at int
	ch chan struct{}
}

func (p *progress) add() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	kept := p.waiters[:0]
	for _, w := range p.waiters {
		if p.n >= w.at {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	p.waiters = kept
}

func (p *progress) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// reached waits for ch, for at most a minute (a test that stalls fails
// instead of hanging).
func reached(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(time.Minute):
		return false
	}
}

// reach returns a channel closed once n registrations have succeeded.
func (p *progress) reach(n int) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := make(chan struct{})
	if p.n >= n {
		close(ch)
	} else {
		p.waiters = append(p.waiters, progressWaiter{n, ch})
	}
	return ch
}
