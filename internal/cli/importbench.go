package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/spf13/cobra"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/internal/bench"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// enrollmentImportBenchCmd is `zerotouch enrollment import-bench`: it
// writes a file of synthetic enrollments (TPM EKs with random RSA-2048
// moduli, which the server takes as it takes any EK, and random X.509
// thumbprints), a line at a time, then imports it as `enrollment import`
// does and reports items per second and the server's peak resident memory
// (VmHWM, with --spawn or --server-pid). Neither side holds the file.
func enrollmentImportBenchCmd(env Env) *cobra.Command {
	var tpms, x509s int
	var file, storage, redisAddrs string
	var spawn, keep bool
	var serverPID int
	var c *conn
	cmd := &cobra.Command{
		Use:   "import-bench",
		Short: "measure a streaming import of synthetic TPM and X.509 enrollments (items/s, server peak memory)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if file == "" {
				f, err := os.CreateTemp("", "zerotouch-import-*.csv")
				if err != nil {
					return err
				}
				f.Close()
				file = f.Name()
				if !keep {
					defer os.Remove(file)
				}
			}
			if err := c.resolve(); err != nil {
				return err
			}
			t0 := time.Now()
			if err := writeSyntheticImport(file, tpms, x509s); err != nil {
				return err
			}
			fmt.Fprintf(env.Stderr, "wrote %d TPM and %d X.509 lines to %s in %v\n", tpms, x509s, file, time.Since(t0).Round(time.Millisecond))
			if spawn {
				var cfg bench.Config
				stop, err := spawnServer(ctx, env, &cfg, c, storage, redisAddrs, false, "warn")
				if err != nil {
					return err
				}
				defer stop()
				serverPID = cfg.ServerPIDs[0]
			}
			cc, err := c.dial()
			if err != nil {
				return err
			}
			defer c.close()
			// The server's anonymous memory (heap and stacks, not the
			// embedded store's mapped file), sampled through the run: its
			// peak in the first tenth against the whole run shows whether
			// memory grows with the file.
			var anonMu sync.Mutex
			var anon []int64
			sampled := make(chan struct{})
			sampleCtx, stopSampling := context.WithCancel(ctx)
			go func() {
				defer close(sampled)
				t := time.NewTicker(100 * time.Millisecond)
				defer t.Stop()
				for serverPID > 0 {
					if v, err := procStatus(serverPID, "RssAnon:"); err == nil {
						anonMu.Lock()
						anon = append(anon, v)
						anonMu.Unlock()
					}
					select {
					case <-sampleCtx.Done():
						return
					case <-t.C:
					}
				}
			}()
			tot, err := importFile(ctx, env, pb.NewEnrollmentServiceClient(cc), file, importOptions{quiet: true})
			stopSampling()
			<-sampled
			if tot == nil {
				return err
			}
			n := tot.created + tot.unchanged + tot.refused + tot.malformed
			fmt.Fprintf(env.Stdout, "import: %d items in %v: %.0f items/s; created %d, unchanged %d, refused %d; server window peak %d items\n",
				n, tot.elapsed.Round(time.Millisecond), float64(n)/tot.elapsed.Seconds(), tot.created, tot.unchanged, tot.refused, tot.maxInFlight)
			if serverPID > 0 {
				if hwm, err := procStatus(serverPID, "VmHWM:"); err == nil {
					fmt.Fprintf(env.Stdout, "server peak RSS (VmHWM, the embedded store's mapped file included): %.1f MiB\n", float64(hwm)/(1<<20))
				}
				if len(anon) > 0 {
					tenth := slices.Max(anon[:max(1, len(anon)/10)])
					fmt.Fprintf(env.Stdout, "server anonymous memory (RssAnon, sampled every 100 ms): peak %.1f MiB in the first tenth of the run, %.1f MiB over the whole run\n",
						float64(tenth)/(1<<20), float64(slices.Max(anon))/(1<<20))
				}
			}
			return err
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&tpms, "tpm", 10000, "TPM EK lines to generate")
	fs.IntVar(&x509s, "x509", 10000, "X.509 thumbprint lines to generate")
	fs.StringVar(&file, "file", "", "the file to write (default: a temporary file, removed unless --keep)")
	fs.BoolVar(&keep, "keep", false, "keep the generated file")
	fs.BoolVar(&spawn, "spawn", false, "start a zerotouch server as a child process for the run")
	choiceVar(cmd, &storage, "storage", "embedded", "with --spawn: embedded or redis", "embedded", "redis")
	fs.StringVar(&redisAddrs, "redis-addrs", "", "with --spawn --storage redis: the Redis addresses")
	fs.IntVar(&serverPID, "server-pid", 0, "the server's process ID, for its peak memory (set by --spawn)")
	c = addConn(cmd, env)
	return cmd
}

// writeSyntheticImport writes tpms EK lines then x509s thumbprint lines,
// each generated as it is written.
func writeSyntheticImport(file string, tpms, x509s int) error {
	f, err := os.Create(filepath.Clean(file))
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	w.WriteString("registration_id,credential\n")
	pub := tpm2.RSAEKTemplate
	n := make([]byte, 256)
	for i := range tpms {
		if _, err := rand.Read(n); err != nil {
			return err
		}
		n[0], n[255] = n[0]|0x80, n[255]|1
		pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: n})
		fmt.Fprintf(w, "ek-%s-%08d,%s\n", run, i, base64.StdEncoding.EncodeToString(tpm.MarshalPublic(&pub)))
	}
	var seed [16]byte
	if _, err := rand.Read(seed[:8]); err != nil {
		return err
	}
	for i := range x509s {
		binary.BigEndian.PutUint64(seed[8:], uint64(i))
		sum := sha256.Sum256(seed[:])
		fmt.Fprintf(w, "x509-%s-%08d,%s\n", run, i, hex.EncodeToString(sum[:]))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// procStatus reads a size field ("VmHWM:", "RssAnon:") of a process's
// /proc status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
