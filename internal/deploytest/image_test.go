package deploytest

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildah runs buildah on a private store and returns its standard
// output.
type buildah struct {
	t    *testing.T
	bin  string
	args []string
}

func (b buildah) run(args ...string) string {
	b.t.Helper()
	return run(b.t, root(b.t), nil, b.bin, append(slices.Clone(b.args), args...)...)
}

func (b buildah) cmd(args ...string) *exec.Cmd {
	return exec.Command(b.bin, append(slices.Clone(b.args), args...)...)
}

// storageDriver is buildah's storage driver: overlay (the kernel's, as
// root), which copies nothing per build step; ZT_BUILDAH_DRIVER=vfs works
// where overlay mounts do not (twice as slow).
func storageDriver() string {
	if d := os.Getenv("ZT_BUILDAH_DRIVER"); d != "" {
		return d
	}
	return "overlay"
}

// hasInterp reports whether an executable is dynamically linked.
func hasInterp(f *elf.File) bool {
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

// fromImages are the FROM images of deploy/Dockerfile.
func fromImages(t *testing.T, dockerfile string) []string {
	t.Helper()
	f, err := os.Open(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var images []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 && strings.EqualFold(fields[0], "FROM") {
			images = append(images, fields[1])
		}
	}
	return images
}

// TestImage builds deploy/Dockerfile with buildah (daemonless: chroot
// isolation, a private store) and runs the image. There is no registry here, so
// the two base images are stand-ins made on the spot under their names:
// "golang" is this machine's Go toolchain with busybox for a POSIX shell
// (the module proxy is this machine's module cache, the build cache its
// build cache), and the distroless image is its nonroot user (65532) with
// CA certificates. Everything the Dockerfile itself says runs for real: the
// build stage (deploy/build.sh), the copies, the data volume's owner, the
// user, the health check, the entry point. The image then serves as that
// user from its configuration file, writes the owner key into its volume,
// and its HEALTHCHECK command passes against it (and fails once it stops).
func TestImage(t *testing.T) {
	t.Parallel()
	bin := require(t, "buildah", "apt-get install buildah")
	// The golang stand-in's shell: a static busybox (Debian's
	// busybox-static; the plain busybox package's is dynamic).
	busybox := "/bin/busybox"
	if f, err := elf.Open(busybox); err != nil || hasInterp(f) {
		if os.Getenv("CI") != "" {
			t.Fatalf("a static %s is required in CI (apt-get install busybox-static): %v", busybox, err)
		}
		t.Skipf("no static %s (apt-get install busybox-static): %v", busybox, err)
	}
	if os.Getuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("the image test runs buildah as root (CI runs as root)")
		}
		t.Skip("buildah's chroot isolation needs root here")
	}
	repo := root(t)
	dockerfile := filepath.Join(repo, "deploy", "Dockerfile")
	images := fromImages(t, dockerfile)
	if len(images) != 2 || images[0] != "golang:1.26" || !strings.HasPrefix(images[1], "gcr.io/distroless/static") {
		t.Fatalf("FROM images %q: update the stand-ins in this test", images)
	}
	store := t.TempDir()
	b := buildah{t: t, bin: bin, args: []string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--storage-driver", storageDriver()}}
	t.Cleanup(func() {
		b.cmd("rm", "--all").Run()
		b.cmd("rmi", "--all", "--force").Run()
	})
	goroot := strings.TrimSpace(run(t, repo, nil, "go", "env", "GOROOT"))
	modcache := strings.TrimSpace(run(t, repo, nil, "go", "env", "GOMODCACHE"))
	gocache := strings.TrimSpace(run(t, repo, nil, "go", "env", "GOCACHE"))
	proxy := strings.TrimSpace(run(t, repo, nil, "go", "env", "GOPROXY"))

	// golang:1.26 stand-in.
	c := strings.TrimSpace(b.run("from", "scratch"))
	m := strings.TrimSpace(b.run("mount", c))
	for _, d := range []string{"usr/local", "bin", "tmp", "etc/ssl/certs", "root", "go"} {
		os.MkdirAll(filepath.Join(m, d), 0o755)
	}
	os.Chmod(filepath.Join(m, "tmp"), 0o1777)
	// The toolchain without what building a program does not use (the
	// commands' sources, tests, the other tools): less to copy per step.
	tools := filepath.Join("pkg", "tool", runtime.GOOS+"_"+runtime.GOARCH)
	tarArgs := []string{"-C", goroot, "-cf", "-", "--exclude=./src/cmd", "--exclude=./test", "--exclude=./api", "--exclude=./doc", "--exclude=./misc"}
	for _, tool := range []string{"fix", "cover", "vet", "preprofile"} {
		tarArgs = append(tarArgs, "--exclude=./"+filepath.Join(tools, tool))
	}
	os.MkdirAll(filepath.Join(m, "usr/local/go"), 0o755)
	run(t, repo, nil, "sh", append([]string{"-c", `tar "$@" . | tar -C "$0" -xf -`, filepath.Join(m, "usr/local/go")}, tarArgs...)...)
	run(t, repo, nil, "cp", busybox, filepath.Join(m, "bin/busybox"))
	for _, applet := range []string{"sh", "id", "chown", "chmod", "mkdir", "dirname"} {
		os.Symlink("busybox", filepath.Join(m, "bin", applet))
	}
	run(t, repo, nil, "cp", "/etc/ssl/certs/ca-certificates.crt", filepath.Join(m, "etc/ssl/certs/"))
	b.run("umount", c)
	b.run("config", "--env", "PATH=/usr/local/go/bin:/bin", "--env", "GOTOOLCHAIN=local", "--env", "HOME=/root",
		"--env", "GOPATH=/go", "--env", "GOSUMDB=off", "--env", "GOPROXY=file:///hostproxy,"+proxy, c)
	b.run("commit", "--quiet", c, images[0])
	b.run("rm", c)

	// distroless stand-in: its nonroot user and CA certificates.
	c = strings.TrimSpace(b.run("from", "scratch"))
	m = strings.TrimSpace(b.run("mount", c))
	for _, d := range []string{"etc/ssl/certs", "tmp", "home/nonroot", "var/lib", "root"} {
		os.MkdirAll(filepath.Join(m, d), 0o755)
	}
	os.Chmod(filepath.Join(m, "tmp"), 0o1777)
	os.Chown(filepath.Join(m, "home/nonroot"), 65532, 65532)
	os.WriteFile(filepath.Join(m, "etc/passwd"), []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"), 0o644)
	os.WriteFile(filepath.Join(m, "etc/group"), []byte("root:x:0:\nnonroot:x:65532:\n"), 0o644)
	run(t, repo, nil, "cp", "/etc/ssl/certs/ca-certificates.crt", filepath.Join(m, "etc/ssl/certs/"))
	b.run("umount", c)
	b.run("config", "--user", "65532:65532", "--workingdir", "/home/nonroot", "--env", "PATH=/usr/local/bin:/usr/bin:/bin", c)
	b.run("commit", "--quiet", c, images[1])
	b.run("rm", c)

	start := time.Now()
	b.run("build", "--pull=never", "--format", "docker", "--isolation", "chroot", "--layers=false",
		"-f", dockerfile, "--ignorefile", filepath.Join(repo, "deploy", "Dockerfile.dockerignore"),
		"--volume", filepath.Join(modcache, "cache", "download")+":/hostproxy:ro",
		"--volume", gocache+":/root/.cache/go-build",
		"-t", "zerotouch:test", repo)
	t.Logf("buildah build: %s", time.Since(start).Round(time.Millisecond))

	// What the image says about itself.
	var info struct {
		Docker struct {
			Config struct {
				User         string
				ExposedPorts map[string]any
				Volumes      map[string]any
				Entrypoint   []string
				Cmd          []string
				Healthcheck  struct{ Test []string }
			} `json:"config"`
		}
	}
	if err := json.Unmarshal([]byte(b.run("inspect", "--type", "image", "zerotouch:test")), &info); err != nil {
		t.Fatal(err)
	}
	cfg := info.Docker.Config
	if cfg.User != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532 (non-root)", cfg.User)
	}
	for _, p := range []string{"8443/tcp", "8444/tcp", "8883/tcp", "9464/tcp"} {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			t.Errorf("image does not expose %s: %v", p, cfg.ExposedPorts)
		}
	}
	if _, ok := cfg.Volumes["/var/lib/zerotouch"]; !ok {
		t.Errorf("volumes %v, want /var/lib/zerotouch", cfg.Volumes)
	}
	if !slices.Equal(cfg.Healthcheck.Test, []string{"CMD", "/usr/local/bin/zerotouch-healthcheck"}) {
		t.Errorf("healthcheck %q", cfg.Healthcheck.Test)
	}
	if want := []string{"/usr/local/bin/zerotouch", "serve", "--config", "/etc/zerotouch/zerotouch.yaml"}; !slices.Equal(append(cfg.Entrypoint, cfg.Cmd...), want) {
		t.Errorf("entrypoint+cmd %q, want %q", append(cfg.Entrypoint, cfg.Cmd...), want)
	}

	// Its files: the data directory belongs to the user, private.
	c = strings.TrimSpace(b.run("from", "--pull=never", "zerotouch:test"))
	m = strings.TrimSpace(b.run("mount", c))
	for path, want := range map[string]struct {
		uid  uint32
		mode os.FileMode
	}{
		"var/lib/zerotouch":                   {65532, os.ModeDir | 0o700},
		"usr/local/bin/zerotouch":             {0, 0o755},
		"usr/local/bin/zerotouch-healthcheck": {0, 0o755},
		"etc/zerotouch/zerotouch.yaml":        {0, 0o644},
	} {
		fi, err := os.Stat(filepath.Join(m, path))
		if err != nil {
			t.Errorf("image: %v", err)
			continue
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != want.uid || fi.Mode() != want.mode {
			t.Errorf("image /%s: uid %d mode %v, want uid %d mode %v", path, st.Uid, fi.Mode(), want.uid, want.mode)
		}
	}
	b.run("umount", c)

	// Run it: TLS files mounted where the configuration looks for them
	// (readable by the image's user), listeners on free loopback ports.
	tlsDir := t.TempDir()
	run(t, tlsDir, nil, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "server-key.pem", "-out", "server.pem", "-days", "1", "-subj", "/CN=zerotouch",
		"-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")
	os.Chmod(filepath.Join(tlsDir, "server-key.pem"), 0o644)
	os.Chmod(tlsDir, 0o755)
	httpAddr := "127.0.0.1:" + itoa(freePort(t))
	env := []string{"--env", "ZEROTOUCH_LISTEN_HTTP=" + httpAddr, "--env", "ZEROTOUCH_LISTEN_GRPC=127.0.0.1:" + itoa(freePort(t)),
		"--env", "ZEROTOUCH_LISTEN_MQTT=127.0.0.1:" + itoa(freePort(t))}
	serve := b.cmd(append(append([]string{"run", "--isolation", "chroot", "--volume", tlsDir + ":/etc/zerotouch/tls:ro"}, env...),
		c, "--", "/usr/local/bin/zerotouch", "serve", "--config", "/etc/zerotouch/zerotouch.yaml")...)
	logFile := filepath.Join(t.TempDir(), "serve.log")
	lf, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	serve.Stdout, serve.Stderr = lf, lf
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			serve.Process.Signal(syscall.SIGTERM)
			serve.Wait()
		}
	}
	defer stop()
	healthcheck := func() error {
		_, err := runErr(repo, nil, bin, append(append(slices.Clone(b.args), append([]string{"run", "--isolation", "chroot"}, env...)...),
			c, "--", "/usr/local/bin/zerotouch-healthcheck")...)
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for healthcheck() != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("the image's health check never passed:\n%s", log)
		}
		time.Sleep(300 * time.Millisecond)
	}
	log, _ := os.ReadFile(logFile)
	if !strings.Contains(string(log), "created the owner access key; its secret is in /var/lib/zerotouch/owner.key") {
		t.Errorf("the server did not write the owner key into its volume:\n%s", log)
	}
	if out, _ := exec.Command("ps", "-o", "user=", "-C", "zerotouch").Output(); !strings.Contains(string(out), "65532") {
		t.Errorf("the server does not run as 65532: ps says %q", out)
	}
	stop()
	if healthcheck() == nil {
		t.Error("the health check passes with the server stopped")
	}
}
