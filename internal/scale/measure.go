package scale

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// PageStats are the latencies of one list's pages.
type PageStats struct {
	Name     string
	Pages    int
	Items    int
	P50, P99 time.Duration
	Max      time.Duration
}

func percentiles(name string, lat []time.Duration, items int) PageStats {
	st := PageStats{Name: name, Pages: len(lat), Items: items}
	if len(lat) == 0 {
		return st
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	st.P50, st.P99, st.Max = pct(0.50), pct(0.99), lat[len(lat)-1]
	return st
}

// pager fetches one page from token and returns its items and the next
// token ("" at the end).
type pager func(ctx context.Context, token string) (items int, next string, err error)

// walk times every page of a list from its first, up to maxPages (0: all).
func walk(ctx context.Context, name string, maxPages int, p pager) (PageStats, error) {
	var lat []time.Duration
	items, token := 0, ""
	for {
		t := time.Now()
		n, next, err := p(ctx, token)
		if err != nil {
			return PageStats{}, fmt.Errorf("%s, page %d: %w", name, len(lat)+1, err)
		}
		lat = append(lat, time.Since(t))
		items += n
		if next == "" || maxPages > 0 && len(lat) >= maxPages {
			break
		}
		token = next
	}
	return percentiles(name, lat, items), nil
}

// MeasurePages walks the native list APIs (gRPC) and the DPS service
// API's queries (HTTPS, x-ms-continuation) over one reused connection
// each, pageSize items a page.
func MeasurePages(ctx context.Context, s *Server, pageSize, maxPages int) ([]PageStats, error) {
	cc, err := grpc.NewClient(s.GRPC, grpc.WithTransportCredentials(credentials.NewTLS(s.TLS())))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+s.AccessKey)
	enr, regs := pb.NewEnrollmentServiceClient(cc), pb.NewRegistrationServiceClient(cc)
	tr := &http.Transport{TLSClientConfig: s.TLS(), MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	dps := func(path string) pager {
		return func(ctx context.Context, token string) (int, string, error) {
			return dpsQuery(ctx, hc, s, path, token, pageSize)
		}
	}
	ps := int32(pageSize)
	lists := []struct {
		name string
		p    pager
	}{
		{"enrollments, native list", func(_ context.Context, tok string) (int, string, error) {
			r, err := enr.ListEnrollments(actx, &pb.ListEnrollmentsRequest{PageSize: ps, PageToken: tok})
			return len(r.GetEnrollments()), r.GetNextPageToken(), err
		}},
		{"enrollments, DPS query", dps("/enrollments/query")},
		{"registrations, native list", func(_ context.Context, tok string) (int, string, error) {
			r, err := regs.ListRegistrations(actx, &pb.ListRegistrationsRequest{PageSize: ps, PageToken: tok})
			return len(r.GetRegistrations()), r.GetNextPageToken(), err
		}},
		{"registrations of a shard, native list", func(_ context.Context, tok string) (int, string, error) {
			r, err := regs.ListRegistrations(actx, &pb.ListRegistrationsRequest{PageSize: ps, PageToken: tok, Shard: ShardID(0)})
			return len(r.GetRegistrations()), r.GetNextPageToken(), err
		}},
		{"registrations of a group, native list", func(_ context.Context, tok string) (int, string, error) {
			r, err := regs.ListRegistrations(actx, &pb.ListRegistrationsRequest{PageSize: ps, PageToken: tok, EnrollmentGroupId: SeedGroup})
			return len(r.GetRegistrations()), r.GetNextPageToken(), err
		}},
		{"registrations of a group, DPS query", dps("/registrations/" + SeedGroup + "/query")},
	}
	var out []PageStats
	for _, l := range lists {
		st, err := walk(ctx, l.name, maxPages, l.p)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// dpsQuery is one page of a DPS service API query.
func dpsQuery(ctx context.Context, hc *http.Client, s *Server, path, token string, pageSize int) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+s.HTTP+path+"?api-version=2021-10-01", bytes.NewReader([]byte(`{"query":"SELECT * FROM c"}`)))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+s.AccessKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-ms-max-item-count", strconv.Itoa(pageSize))
	if token != "" {
		req.Header.Set("x-ms-continuation", token)
	}
	res, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, "", err
	}
	if res.StatusCode != http.StatusOK {
		return 0, "", fmt.Errorf("HTTP %d: %.300s", res.StatusCode, body)
	}
	// Count the items without decoding them all: the page is a JSON array
	// of objects, each an item at depth one.
	return countTopObjects(body), res.Header.Get("x-ms-continuation"), nil
}

// countTopObjects counts the objects directly inside a JSON array.
func countTopObjects(b []byte) int {
	depth, n, inStr, esc := 0, 0, false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			if depth == 1 && c == '{' {
				n++
			}
			depth++
		case c == '}' || c == ']':
			depth--
		}
	}
	return n
}

// SnapshotStats is a hub's snapshot of one shard.
type SnapshotStats struct {
	Shard      string
	Identities int
	Pages      int
	Duration   time.Duration
	// RSSBefore is the server's resident memory before; Peak its highest
	// resident memory during the snapshot (VmHWM, reset before).
	RSSBefore, Peak int64
	// AnonBefore and AnonAfter are the anonymous part of resident memory
	// (without the mmap'd store file's pages) before and after.
	AnonBefore, AnonAfter int64
	// PeakMeasured is false when the peak could not be reset (then Peak is
	// the process's lifetime peak).
	PeakMeasured bool
}

// MeasureSnapshot takes a hub's snapshot of shard as internal/hubclient
// does (ListShardIdentities pages, then the cursor it gives is where the
// WatchAssignments stream starts), authenticated by the cluster's pinned
// node certificate, and reads the server's peak memory meanwhile.
func MeasureSnapshot(ctx context.Context, s *Server, f *Fixture, shard string) (SnapshotStats, error) {
	tc := s.TLS()
	tc.Certificates = []tls.Certificate{{Certificate: [][]byte{f.Node.Cert.Raw}, PrivateKey: f.Node.Key, Leaf: f.Node.Cert}}
	cc, err := grpc.NewClient(s.GRPC, grpc.WithTransportCredentials(credentials.NewTLS(tc)), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return SnapshotStats{}, err
	}
	defer cc.Close()
	api := pb.NewHubAssignmentServiceClient(cc)
	if _, err := api.ListClusterShards(ctx, &pb.ListClusterShardsRequest{}); err != nil { // the handshake, outside the timing
		return SnapshotStats{}, fmt.Errorf("hub API: %w", err)
	}
	st := SnapshotStats{Shard: shard}
	before, err := ReadMemory(s.PID)
	if err != nil {
		return st, err
	}
	st.RSSBefore, st.AnonBefore = before.RSS, before.Anon
	st.PeakMeasured = ResetPeak(s.PID) == nil
	start := time.Now()
	token := ""
	var cursor uint64
	for {
		page, err := api.ListShardIdentities(ctx, &pb.ListShardIdentitiesRequest{Shard: shard, PageSize: 1000, PageToken: token})
		if err != nil {
			return st, fmt.Errorf("snapshot of %s: %w", shard, err)
		}
		st.Pages++
		st.Identities += len(page.GetIdentities())
		cursor = page.GetCursor()
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	// A hub then acknowledges the snapshot's cursor (the server checks it
	// against the log) and watches from it (WatchAssignments).
	if _, err := api.AckAssignments(ctx, &pb.AckAssignmentsRequest{Shard: shard, Cursor: cursor}); err != nil {
		return st, fmt.Errorf("acknowledge the snapshot's cursor: %w", err)
	}
	st.Duration = time.Since(start)
	after, err := ReadMemory(s.PID)
	if err != nil {
		return st, err
	}
	st.Peak, st.AnonAfter = after.HWM, after.Anon
	return st, nil
}
