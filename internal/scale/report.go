package scale

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// table writes a markdown table.
type table struct {
	title string
	head  []string
	rows  [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) {
	if len(t.rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### %s\n\n| %s |\n|%s\n", t.title, strings.Join(t.head, " | "), strings.Repeat("---|", len(t.head)))
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
}

// num formats an integer with thousands separators.
func num(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func per(total int64, n int) string {
	if n == 0 {
		return "-"
	}
	return num(total / int64(n))
}

// Tables are the metrics' titles, in the order Print writes them; a test
// checks each appears.
var Tables = []string{"Seeding", "Registration rate on fresh TLS", "Store bytes per device", "Page latency",
	"Hub snapshot of one shard", "Start-up of a replica", "Redis Cluster balance"}

// Print writes one markdown table per metric, a row per size (and per
// list or master), with per-device costs.
func Print(w io.Writer, points []*Point) {
	if len(points) == 0 {
		return
	}
	st := points[0].Storage
	seed := &table{title: Tables[0] + " (" + st + ")", head: []string{"devices", "registrations", "individual enrollments", "seed time", "writes/s"}}
	regTitle := Tables[1] + " (" + st + ", gRPC, one fresh TLS connection per device)"
	if r := points[0].Rounds; r > 1 {
		regTitle = fmt.Sprintf("%s (%s, gRPC, one fresh TLS connection per device; median of %d interleaved rounds, every size each round)", Tables[1], st, r)
	}
	reg := &table{title: regTitle,
		head: []string{"devices in store", "kind", "ok / attempted", "registrations/s", "vs smallest size", "p50 / p99 ms", "server CPU µs/registration"}}
	bytesT := &table{title: Tables[2] + " (" + st + ")", head: []string{"devices", "all, per registered device", "registrations + identities + indexes, per registration",
		"individual enrollments, per enrollment", "assignment log, per registered device", "log events kept", "file size per device"}}
	pages := &table{title: fmt.Sprintf("%s (%s, %d items a page, reused connection, every page from the first)", Tables[3], st, points[0].PageSize), head: []string{"list", "devices", "pages walked", "items", "p50 ms", "p99 ms", "max ms"}}
	snap := &table{title: Tables[4] + " (" + st + ", ListShardIdentities pages as internal/hubclient takes them)",
		head: []string{"devices", "shard devices", "pages", "time", "identities/s", "server RSS before", "server peak during", "peak - before, per identity", "anonymous RSS before → after"}}
	start := &table{title: Tables[5] + " (" + st + ")", head: []string{"devices", "exec to /readyz", "resident at ready", "of which anonymous", "peak by then", "resident per device"}}
	cluster := &table{title: Tables[6], head: []string{"devices", "master", "keys", "share of keys", "used_memory", "share of memory"}}
	rates := map[string]float64{}
	for _, p := range points {
		m := p.Seed.Mix
		writes := m.X509 + m.TPM + m.Enrolled
		seed.add(num(int64(p.Size)), num(int64(m.X509+m.TPM)), num(int64(m.TPM+m.Enrolled)), p.Seed.Duration.Round(time.Millisecond).String(),
			num(int64(float64(writes)/max(p.Seed.Duration.Seconds(), 1e-9))))
		for _, r := range p.Registrations {
			vs := "1.00"
			if base, ok := rates[r.Attestation]; ok && base > 0 {
				vs = fmt.Sprintf("%.2f", r.PerSecond/base)
			} else {
				rates[r.Attestation] = r.PerSecond
			}
			kind := map[string]string{"x509": "X.509 group device", "tpm": "TPM individual enrollment"}[r.Attestation]
			cpu := "-"
			if r.ServerCPUMeasured {
				cpu = num(int64(r.ServerCPUPerOpUs))
			}
			reg.add(num(int64(p.Size)), kind, fmt.Sprintf("%d / %d", r.Succeeded, r.Attempted), fmt.Sprintf("%.0f", r.PerSecond), vs,
				fmt.Sprintf("%.1f / %.1f", r.LatencyMs.P50, r.LatencyMs.P99), cpu)
		}
		regs, enrs := m.X509+m.TPM, m.TPM+m.Enrolled
		file := "-"
		if p.Bytes.File > 0 {
			file = per(p.Bytes.File, regs)
		}
		if p.Storage == "redis" {
			// used_memory is one figure: the log's streams are measured
			// apart, the rest is registrations and enrollments together.
			bytesT.add(num(int64(p.Size)), per(p.Bytes.Total, regs), "(with enrollments) "+per(p.Bytes.Total-p.Bytes.Log, regs), "(in the previous column)",
				per(p.Bytes.Log, regs), num(p.Bytes.LogEvents), file)
		} else {
			bytesT.add(num(int64(p.Size)), per(p.Bytes.Total, regs), per(p.Bytes.Registrations, regs), per(p.Bytes.Enrollments, enrs),
				per(p.Bytes.Log, regs), num(p.Bytes.LogEvents), file)
		}
		for _, pg := range p.Pages {
			pages.add(pg.Name, num(int64(p.Size)), num(int64(pg.Pages)), num(int64(pg.Items)), ms(pg.P50), ms(pg.P99), ms(pg.Max))
		}
		s := p.Snapshot
		peak := mib(s.Peak)
		if !s.PeakMeasured {
			peak += " (lifetime peak)"
		}
		growth := "-"
		if s.Identities > 0 {
			growth = num((s.Peak-s.RSSBefore)/int64(s.Identities)) + " B"
		}
		snap.add(num(int64(p.Size)), num(int64(s.Identities)), num(int64(s.Pages)), s.Duration.Round(time.Millisecond).String(),
			num(int64(float64(s.Identities)/max(s.Duration.Seconds(), 1e-9))), mib(s.RSSBefore), peak, growth, mib(s.AnonBefore)+" → "+mib(s.AnonAfter))
		start.add(num(int64(p.Size)), p.Startup.Round(time.Millisecond).String(), mib(p.StartupMem.RSS), mib(p.StartupMem.Anon), mib(p.StartupMem.HWM), per(p.StartupMem.RSS, p.Size)+" B")
		var keys, mem int64
		for _, ms := range p.Masters {
			keys += ms.Keys
			mem += ms.UsedMemory
		}
		for _, ms := range p.Masters {
			cluster.add(num(int64(p.Size)), ms.Addr, num(ms.Keys), fmt.Sprintf("%.1f%%", 100*float64(ms.Keys)/float64(max(keys, 1))),
				mib(ms.UsedMemory), fmt.Sprintf("%.1f%%", 100*float64(ms.UsedMemory)/float64(max(mem, 1))))
		}
	}
	for _, t := range []*table{seed, reg, bytesT, pages, snap, start, cluster} {
		t.write(w)
	}
}
