package deploytest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/zerotouch/zerotouch/internal/config"
)

const chartDir = "deploy/helm/zerotouch"

// obj is one rendered manifest, as YAML maps.
type obj map[string]any

// at walks a path of map keys; nil if any is missing.
func (o obj) at(path ...string) any {
	var cur any = o
	for _, p := range path {
		m := asObj(cur)
		if m == nil {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// asObj is a YAML mapping (yaml.v3 decodes nested ones as the outer map's
// type), or nil.
func asObj(v any) obj {
	switch m := v.(type) {
	case obj:
		return m
	case map[string]any:
		return m
	}
	return nil
}

func (o obj) str(path ...string) string { s, _ := o.at(path...).(string); return s }
func (o obj) list(path ...string) []any { l, _ := o.at(path...).([]any); return l }
func (o obj) m(path ...string) obj      { return asObj(o.at(path...)) }
func (o obj) id() string                { return o.str("kind") + "/" + o.str("metadata", "name") }

// render runs helm template on the chart with the --set values and returns
// the file it wrote and its objects.
func render(t *testing.T, dir string, name string, set ...string) (string, []obj) {
	t.Helper()
	args := []string{"helm", "template", "zt", chartDir, "--kube-version", "1.30.0"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out := goTool(t, args...)
	file := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	var objs []obj
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o obj
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	return file, objs
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels obj) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// scenario is one set of values and what the rendered chart must say.
type scenario struct {
	name       string
	set        []string
	replicas   int
	redisAddrs []string
	// secrets the release expects to exist already (not rendered).
	external []string
	metrics  bool
}

// TestHelmChart lints the chart and renders it for a bundled and an
// external Redis; every rendered manifest decodes strictly into its
// Kubernetes type (deploy/kubecheck), and the manifests fit together and
// with the server: selectors select the pods, probes and Services name
// ports the pods have, every Secret and ConfigMap a pod uses is rendered
// or given, the pods run as non-root on a read-only root file system with
// resources, and the rendered zerotouch.yaml loads through the real
// configuration loader with the pods' environment, naming the files where
// the pods mount them.
func TestHelmChart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	goTool(t, "helm", "lint", "--strict", chartDir, "--set", "tls.secretName=zt-tls")

	scenarios := []scenario{{
		name:       "bundled-redis",
		set:        []string{"tls.secretName=zt-tls"},
		replicas:   2,
		redisAddrs: []string{"zt-zerotouch-redis:6379"},
		external:   []string{"zt-tls"},
		metrics:    true,
	}, {
		name: "external-redis-cluster",
		set: []string{"tls.secretName=zt-tls", "replicaCount=3", "redis.enabled=false",
			"externalRedis.addrs={r1:6379,r2:6379,r3:6379}", "externalRedis.cluster=true",
			"externalRedis.existingSecret=redis-auth", "externalRedis.tls.enabled=true", "externalRedis.tls.secretName=redis-ca",
			"dataKey.existingSecret=zt-data-key", "persistence.enabled=false", "metrics.port=9100",
			"service.type=LoadBalancer", "config.dps.service_hostname=dps.example.com", "config.log.level=debug"},
		replicas:   3,
		redisAddrs: []string{"r1:6379", "r2:6379", "r3:6379"},
		external:   []string{"zt-tls", "redis-auth", "redis-ca", "zt-data-key"},
		metrics:    true,
	}, {
		name:       "one-replica-no-metrics",
		set:        []string{"tls.secretName=zt-tls", "replicaCount=1", "metrics.enabled=false", "redis.auth=false"},
		replicas:   1,
		redisAddrs: []string{"zt-zerotouch-redis:6379"},
		external:   []string{"zt-tls"},
	}}
	var files []string
	rendered := map[string][]obj{}
	for _, sc := range scenarios {
		file, objs := render(t, dir, sc.name, sc.set...)
		files = append(files, file)
		rendered[sc.name] = objs
	}
	// Strict decoding into the Kubernetes types, all files in one run.
	out := run(t, root(t), nil, "go", append([]string{"run", "-modfile=tools/go.mod", "deploy/kubecheck/main.go"}, files...)...)
	t.Logf("kubecheck:\n%s", out)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { checkRendered(t, sc, rendered[sc.name]) })
	}

	// What the chart refuses.
	for _, bad := range []struct{ set, want string }{
		{"", "tls.secretName"},
		{"tls.secretName=x,redis.enabled=false", "externalRedis.addrs"},
		{"tls.secretName=x,metrics.port=8443", "metrics"},
		{"tls.secretName=x,replicas=2", "replicas"},
	} {
		args := []string{"tool", "-modfile=tools/go.mod", "helm", "template", "zt", chartDir, "--kube-version", "1.30.0"}
		if bad.set != "" {
			args = append(args, "--set", bad.set)
		}
		out, err := runErr(root(t), nil, "go", args...)
		if err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("helm template --set %q: err %v, want an error naming %s:\n%s", bad.set, err, bad.want, out)
		}
	}
}

func checkRendered(t *testing.T, sc scenario, objs []obj) {
	byID := map[string]obj{}
	for _, o := range objs {
		if _, dup := byID[o.id()]; dup {
			t.Errorf("%s rendered twice", o.id())
		}
		byID[o.id()] = o
	}
	secretExists := func(name string) bool {
		return byID["Secret/"+name] != nil || slices.Contains(sc.external, name)
	}
	var pods []obj // pod templates
	for _, o := range objs {
		if o.str("kind") == "StatefulSet" {
			pods = append(pods, o.m("spec", "template"))
		}
	}

	// Every workload: its selector, its governing Service, its volumes and
	// Secrets, non-root on a read-only root, resources.
	for _, o := range objs {
		if o.str("kind") != "StatefulSet" {
			continue
		}
		pod := o.m("spec", "template")
		if !subset(o.m("spec", "selector", "matchLabels"), pod.m("metadata", "labels")) {
			t.Errorf("%s: the selector does not select its own pods", o.id())
		}
		if svc := byID["Service/"+o.str("spec", "serviceName")]; svc == nil || !subset(svc.m("spec", "selector"), pod.m("metadata", "labels")) {
			t.Errorf("%s: serviceName %q is no Service selecting its pods", o.id(), o.str("spec", "serviceName"))
		}
		if pod.at("spec", "securityContext", "runAsNonRoot") != true || pod.at("spec", "automountServiceAccountToken") != false {
			t.Errorf("%s: pods must run as non-root without a service account token: %v", o.id(), pod.at("spec"))
		}
		volumes := map[string]obj{}
		for _, v := range pod.list("spec", "volumes") {
			v := asObj(v)
			volumes[v.str("name")] = v
			if name := v.str("secret", "secretName"); name != "" && !secretExists(name) {
				t.Errorf("%s: volume %s uses Secret %s, which is neither rendered nor given", o.id(), v.str("name"), name)
			}
			if name := v.str("configMap", "name"); name != "" && byID["ConfigMap/"+name] == nil {
				t.Errorf("%s: volume %s uses ConfigMap %s, which is not rendered", o.id(), v.str("name"), name)
			}
		}
		for _, c := range o.list("spec", "volumeClaimTemplates") {
			volumes[asObj(c).str("metadata", "name")] = obj{"pvc": true}
		}
		for _, c := range pod.list("spec", "containers") {
			c := asObj(c)
			where := o.id() + " container " + c.str("name")
			if c.at("securityContext", "readOnlyRootFilesystem") != true || c.at("securityContext", "allowPrivilegeEscalation") != false ||
				!reflect.DeepEqual(c.at("securityContext", "capabilities", "drop"), []any{"ALL"}) {
				t.Errorf("%s: securityContext %v, want a read-only root, no privilege escalation, every capability dropped", where, c.at("securityContext"))
			}
			if c.at("resources", "requests", "cpu") == nil || c.at("resources", "requests", "memory") == nil || c.at("resources", "limits", "memory") == nil {
				t.Errorf("%s: resources %v, want cpu and memory requests and a memory limit", where, c.at("resources"))
			}
			for _, mnt := range c.list("volumeMounts") {
				name := asObj(mnt).str("name")
				if volumes[name] == nil {
					t.Errorf("%s: mounts volume %s, which the pod does not have", where, name)
				}
			}
			for _, e := range c.list("env") {
				e := asObj(e)
				if name := e.str("valueFrom", "secretKeyRef", "name"); name != "" && !secretExists(name) {
					t.Errorf("%s: env %s uses Secret %s, which is neither rendered nor given", where, e.str("name"), name)
				}
			}
			if c.at("livenessProbe") == nil || c.at("readinessProbe") == nil {
				t.Errorf("%s: liveness and readiness probes are required", where)
			}
		}
	}

	// Services select pods that have the ports they target.
	for _, o := range objs {
		if o.str("kind") != "Service" {
			continue
		}
		var matched []obj
		for _, p := range pods {
			if subset(o.m("spec", "selector"), p.m("metadata", "labels")) {
				matched = append(matched, p)
			}
		}
		if len(matched) != 1 {
			t.Errorf("%s selects %d workloads, want 1", o.id(), len(matched))
			continue
		}
		for _, p := range o.list("spec", "ports") {
			target := asObj(p).str("targetPort")
			if _, ok := containerPorts(matched[0])[target]; !ok {
				t.Errorf("%s: targetPort %q is no port of its pods", o.id(), target)
			}
		}
	}

	// Zerotouch itself.
	sts := byID["StatefulSet/zt-zerotouch"]
	if sts == nil {
		t.Fatalf("no StatefulSet/zt-zerotouch among %d objects", len(objs))
	}
	if got := sts.at("spec", "replicas"); got != sc.replicas {
		t.Errorf("replicas %v, want %d", got, sc.replicas)
	}
	pod := sts.m("spec", "template")
	c := asObj(pod.list("spec", "containers")[0])
	ports := containerPorts(pod)
	for _, probe := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
		if port := c.str(probe, "httpGet", "port"); ports[port] != 8443 || c.str(probe, "httpGet", "scheme") != "HTTPS" {
			t.Errorf("%s: %v, want HTTPS on the REST port", probe, c.at(probe))
		}
	}
	if c.str("readinessProbe", "httpGet", "path") != "/readyz" || c.str("livenessProbe", "httpGet", "path") != "/healthz" {
		t.Errorf("probes: readiness %s, liveness %s; want /readyz and /healthz", c.str("readinessProbe", "httpGet", "path"), c.str("livenessProbe", "httpGet", "path"))
	}
	pdb := byID["PodDisruptionBudget/zt-zerotouch"]
	if pdb == nil || !subset(pdb.m("spec", "selector", "matchLabels"), pod.m("metadata", "labels")) {
		t.Errorf("no PodDisruptionBudget selecting the zerotouch pods: %v", pdb)
	}
	mounts := map[string]obj{} // mount path → mount
	for _, mnt := range c.list("volumeMounts") {
		mnt := asObj(mnt)
		mounts[mnt.str("mountPath")] = mnt
	}
	volumes := map[string]obj{}
	for _, v := range pod.list("spec", "volumes") {
		v := asObj(v)
		volumes[v.str("name")] = v
	}
	// mountOf finds the mount holding path, and the volume behind it.
	mountOf := func(path string) (obj, obj) {
		for dir, mnt := range mounts {
			if path == dir || strings.HasPrefix(path, dir+"/") {
				return mnt, volumes[mnt.str("name")]
			}
		}
		return nil, nil
	}

	cm := byID["ConfigMap/zt-zerotouch"]
	if mnt, _ := mountOf("/etc/zerotouch/zerotouch.yaml"); mnt == nil || mnt.str("subPath") != "zerotouch.yaml" {
		t.Fatalf("the configuration file is not mounted at /etc/zerotouch/zerotouch.yaml: %v", mounts)
	}
	if !reflect.DeepEqual(c.at("args"), []any{"serve", "--config", "/etc/zerotouch/zerotouch.yaml"}) {
		t.Errorf("args %v", c.at("args"))
	}
	tmp := t.TempDir()
	cfgFile := filepath.Join(tmp, "zerotouch.yaml")
	os.WriteFile(cfgFile, []byte(cm.str("data", "zerotouch.yaml")), 0o600)
	var fileCfg config.Config
	if err := yaml.Unmarshal([]byte(cm.str("data", "zerotouch.yaml")), &fileCfg); err != nil {
		t.Fatal(err)
	}
	// The pod's environment, as the loader reads it: Secret values are
	// stand-ins, and the files the configuration names exist here as
	// stand-ins once they are shown to be mounted where it says.
	env := map[string]string{}
	for _, e := range c.list("env") {
		e := asObj(e)
		env[e.str("name")] = e.str("value")
		if e.at("valueFrom") != nil {
			env[e.str("name")] = "from-secret"
		}
	}
	files := map[string]string{
		"tls.cert_file":              fileCfg.TLS.CertFile,
		"tls.key_file":               fileCfg.TLS.KeyFile,
		"secrets.data_key_file":      fileCfg.Secrets.DataKeyFile,
		"storage.redis.tls.ca_file":  fileCfg.Storage.Redis.TLS.CAFile,
		"storage.redis.tls.key_file": fileCfg.Storage.Redis.TLS.KeyFile,
	}
	for key, path := range files {
		if path == "" {
			continue
		}
		mnt, vol := mountOf(path)
		if mnt == nil || vol == nil || vol.at("secret") == nil {
			t.Errorf("%s %s is on no Secret volume of the pod", key, path)
			continue
		}
		if items := vol.list("secret", "items"); items != nil {
			found := false
			for _, it := range items {
				found = found || filepath.Join(mnt.str("mountPath"), asObj(it).str("path")) == path
			}
			if !found {
				t.Errorf("%s %s: Secret volume %s projects no such file", key, path, vol.str("name"))
			}
		}
	}
	if fileCfg.TLS.CertFile != "/etc/zerotouch/tls/tls.crt" || fileCfg.TLS.KeyFile != "/etc/zerotouch/tls/tls.key" {
		t.Errorf("tls files %s %s, want a kubernetes.io/tls Secret's tls.crt and tls.key", fileCfg.TLS.CertFile, fileCfg.TLS.KeyFile)
	}
	for _, f := range []*string{&fileCfg.TLS.CertFile, &fileCfg.TLS.KeyFile, &fileCfg.Storage.Redis.TLS.CAFile} {
		if *f != "" {
			*f = filepath.Join(tmp, filepath.Base(*f))
			os.WriteFile(*f, nil, 0o600)
		}
	}
	env["ZEROTOUCH_TLS_CERT_FILE"], env["ZEROTOUCH_TLS_KEY_FILE"] = fileCfg.TLS.CertFile, fileCfg.TLS.KeyFile
	if ca := fileCfg.Storage.Redis.TLS.CAFile; ca != "" {
		// No variable names this file: load a copy of the file that does.
		raw := strings.ReplaceAll(cm.str("data", "zerotouch.yaml"), "/etc/zerotouch/redis-tls/ca.crt", ca)
		os.WriteFile(cfgFile, []byte(raw), 0o600)
	}
	load := func() (*config.Config, error) {
		return config.Load([]string{"--config", cfgFile}, func(k string) string { return env[k] })
	}
	cfg, err := load()
	metricsKey := hasKey("listen.metrics")
	if sc.metrics && !metricsKey {
		// The server does not have listen.metrics yet (it is on its way):
		// the chart's metrics port is ready for it, this load must fail on
		// it alone, and the rest is checked without it.
		if err == nil || !strings.Contains(err.Error(), "metrics") {
			t.Fatalf("config.Load with listen.metrics, which the schema lacks: %v", err)
		}
		t.Logf("listen.metrics is not in the configuration schema yet; the rendered config sets it: %v", err)
		raw, _ := os.ReadFile(cfgFile)
		var kept []string
		for _, line := range strings.Split(string(raw), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "metrics: ") {
				kept = append(kept, line)
			}
		}
		os.WriteFile(cfgFile, []byte(strings.Join(kept, "\n")), 0o600)
		cfg, err = load()
	}
	if err != nil {
		t.Fatalf("the rendered zerotouch.yaml with the pod's environment does not load: %v\n%s", err, cm.str("data", "zerotouch.yaml"))
	}
	if cfg.Storage.Backend != "redis" || !slices.Equal(cfg.Storage.Redis.Addrs, sc.redisAddrs) {
		t.Errorf("storage %s %v, want redis %v", cfg.Storage.Backend, cfg.Storage.Redis.Addrs, sc.redisAddrs)
	}
	if (env["ZEROTOUCH_REDIS_PASSWORD"] != "") != (byID["Secret/zt-zerotouch-redis"] != nil || slices.Contains(sc.external, "redis-auth")) {
		t.Errorf("ZEROTOUCH_REDIS_PASSWORD %q", env["ZEROTOUCH_REDIS_PASSWORD"])
	}
	claims := map[string]bool{}
	for _, c := range sts.list("spec", "volumeClaimTemplates") {
		claims[asObj(c).str("metadata", "name")] = true
	}
	if mnt, vol := mountOf(cfg.DataDir); mnt == nil || mnt.at("readOnly") == true ||
		!(vol == nil && claims[mnt.str("name")] || vol != nil && vol.at("emptyDir") != nil) {
		t.Errorf("data_dir %s is on no writable volume of the pod (mounts %v)", cfg.DataDir, mounts)
	}
	if mnt, _ := mountOf("/tmp"); mnt == nil {
		t.Error("/tmp is not a volume, and the root file system is read-only")
	}
	for name, addr := range map[string]string{"https": cfg.Listen.HTTP, "grpc": cfg.Listen.GRPC, "mqtt": cfg.Listen.MQTT} {
		if want := fmt.Sprintf("0.0.0.0:%d", ports[name]); addr != want {
			t.Errorf("the server listens on %s for %s, the pod's port is %s", addr, name, want)
		}
	}
	if cfg.Storage.Redis.Cluster != (len(sc.redisAddrs) > 1) || cfg.DPS.ServiceHostname != "" && cfg.DPS.ServiceHostname != "dps.example.com" {
		t.Errorf("config %+v", cfg)
	}
	if _, ok := ports["metrics"]; ok != sc.metrics {
		t.Errorf("metrics port %v, want it %v", ports, sc.metrics)
	}
	if sc.metrics && metricsKey {
		v := reflect.ValueOf(cfg.Listen).FieldByName("Metrics")
		if want := fmt.Sprintf("0.0.0.0:%d", ports["metrics"]); !v.IsValid() || v.String() != want {
			t.Errorf("listen.metrics %v, want %s (the pod's metrics port)", v, want)
		}
	}
}

// containerPorts maps a pod template's named ports to their numbers.
func containerPorts(pod obj) map[string]int {
	ports := map[string]int{}
	for _, c := range pod.list("spec", "containers") {
		for _, p := range asObj(c).list("ports") {
			p := asObj(p)
			ports[p.str("name")], _ = p.at("containerPort").(int)
		}
	}
	return ports
}
