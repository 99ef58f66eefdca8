package deploytest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/zerotouch/zerotouch/internal/config"
)

// composeService is what the test reads of a compose service.
type composeService struct {
	Image       string
	Build       struct{ Context, Dockerfile string }
	Command     []string
	Environment map[string]string
	Secrets     []string
	Volumes     []string
	Ports       []string
	DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
	Healthcheck struct{ Test []string }
	ReadOnly    bool `yaml:"read_only"`
	Tmpfs       []string
	CapDrop     []string `yaml:"cap_drop"`
	SecurityOpt []string `yaml:"security_opt"`
	User        string
}

// TestCompose checks deploy/compose.yaml without Docker (no engine runs
// here): Zerotouch twice and Redis; both replicas on Redis with the same
// environment, the same data key secret and one data volume, built from
// deploy/Dockerfile; the secrets are the files deploy/secrets.sh makes; the
// environment loads through the real configuration loader over the image's
// configuration file; every listener is published, no host port twice; the
// replicas wait for a healthy Redis; hardening.
func TestCompose(t *testing.T) {
	repo := root(t)
	dir := filepath.Join(repo, "deploy")
	raw, err := os.ReadFile(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Name     string
		Services map[string]composeService
		Secrets  map[string]struct{ File string }
		Volumes  map[string]any
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range f.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"redis", "zerotouch-1", "zerotouch-2"}) {
		t.Fatalf("services %v, want redis, zerotouch-1, zerotouch-2", names)
	}
	redis, z1 := f.Services["redis"], f.Services["zerotouch-1"]
	if !strings.HasPrefix(redis.Image, "redis:") || !slices.Contains(redis.Command, "--appendonly") || len(redis.Healthcheck.Test) == 0 {
		t.Errorf("redis: %+v; want the redis image, append-only, a health check", redis)
	}
	if len(redis.Ports) != 0 {
		t.Errorf("redis publishes %v; it is for the replicas only", redis.Ports)
	}
	if z1.Build.Dockerfile == "" {
		t.Fatal("zerotouch-1 does not build the image")
	}
	if _, err := os.Stat(filepath.Join(dir, z1.Build.Context, z1.Build.Dockerfile)); err != nil || filepath.Clean(filepath.Join(dir, z1.Build.Context)) != repo {
		t.Errorf("build %+v: want the repository root and deploy/Dockerfile (%v)", z1.Build, err)
	}

	// Secret files, as deploy/secrets.sh names them.
	secretsDir := t.TempDir()
	run(t, repo, nil, "bash", "deploy/secrets.sh", secretsDir, "zerotouch")
	for name, s := range f.Secrets {
		if filepath.Dir(filepath.Clean(s.File)) != "secrets" {
			t.Errorf("secret %s: %s is not in deploy/secrets", name, s.File)
		}
		if _, err := os.Stat(filepath.Join(secretsDir, filepath.Base(s.File))); err != nil {
			t.Errorf("secret %s: deploy/secrets.sh makes no %s", name, filepath.Base(s.File))
		}
	}

	hostPorts := map[string]string{}
	for _, name := range []string{"zerotouch-1", "zerotouch-2"} {
		s := f.Services[name]
		if s.Image != z1.Image || !maps(s.Environment, z1.Environment) || !slices.Equal(s.Secrets, z1.Secrets) || !slices.Equal(s.Volumes, z1.Volumes) {
			t.Errorf("%s differs from zerotouch-1 in image, environment, secrets or volumes: %+v", name, s)
		}
		if s.DependsOn["redis"].Condition != "service_healthy" {
			t.Errorf("%s: depends_on %v, want redis service_healthy", name, s.DependsOn)
		}
		if !s.ReadOnly || !slices.Contains(s.Tmpfs, "/tmp") || !slices.Equal(s.CapDrop, []string{"ALL"}) ||
			!slices.Contains(s.SecurityOpt, "no-new-privileges:true") || s.User != "" && s.User != "65532:65532" {
			t.Errorf("%s: hardening read_only %v tmpfs %v cap_drop %v security_opt %v user %q", name, s.ReadOnly, s.Tmpfs, s.CapDrop, s.SecurityOpt, s.User)
		}
		// The configuration the container runs: the image's file, then
		// this environment, with each /run/secrets/NAME a secret it has.
		env := map[string]string{}
		for k, v := range s.Environment {
			if secret, ok := strings.CutPrefix(v, "/run/secrets/"); ok {
				if !slices.Contains(s.Secrets, secret) || f.Secrets[secret].File == "" {
					t.Errorf("%s: %s=%s, but the service has no such secret", name, k, v)
					continue
				}
				v = filepath.Join(secretsDir, filepath.Base(f.Secrets[secret].File))
			}
			env[k] = v
		}
		cfg, err := config.Load([]string{"--config", filepath.Join(dir, "zerotouch.yaml")}, func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("%s: its configuration does not load: %v", name, err)
		}
		if cfg.Storage.Backend != "redis" || len(cfg.Storage.Redis.Addrs) != 1 || cfg.Secrets.DataKeyFile == "" {
			t.Errorf("%s: storage %s %v, data key %q; want redis and the shared data key", name, cfg.Storage.Backend, cfg.Storage.Redis.Addrs, cfg.Secrets.DataKeyFile)
		}
		if host, port, _ := strings.Cut(cfg.Storage.Redis.Addrs[0], ":"); f.Services[host].Image == "" || port != "6379" {
			t.Errorf("%s: Redis at %s is not the redis service", name, cfg.Storage.Redis.Addrs[0])
		}
		data, err := os.ReadFile(cfg.Secrets.DataKeyFile)
		if err != nil || len(strings.TrimSpace(string(data))) != 44 {
			t.Errorf("%s: data key %s: %v", name, cfg.Secrets.DataKeyFile, err)
		}
		mounted := false
		for _, v := range s.Volumes {
			vol, target, _ := strings.Cut(v, ":")
			if _, named := f.Volumes[vol]; named && target == cfg.DataDir {
				mounted = true
			}
		}
		if !mounted {
			t.Errorf("%s: data_dir %s is not on a named volume: %v", name, cfg.DataDir, s.Volumes)
		}
		published := map[string]bool{}
		for _, p := range s.Ports {
			i := strings.LastIndex(p, ":")
			host, container := p[:i], p[i+1:]
			if other, dup := hostPorts[host]; dup {
				t.Errorf("host port %s is published by %s and %s", host, other, name)
			}
			hostPorts[host] = name
			published[container] = true
		}
		for key, addr := range map[string]string{"listen.http": cfg.Listen.HTTP, "listen.grpc": cfg.Listen.GRPC, "listen.mqtt": cfg.Listen.MQTT, "listen.metrics": listenMetrics(cfg)} {
			if addr == "" {
				continue
			}
			if port := addr[strings.LastIndex(addr, ":")+1:]; !published[port] {
				t.Errorf("%s: %s %s is not published (%v)", name, key, addr, s.Ports)
			}
		}
	}
}

// listenMetrics is listen.metrics, "" while the schema lacks it.
func listenMetrics(cfg *config.Config) string {
	if !hasKey("listen.metrics") {
		return ""
	}
	return fmt.Sprint(valueAt(cfg, "listen.metrics"))
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
