package deploytest

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/zerotouch/zerotouch/internal/config"
)

// A key is one leaf of the configuration schema: its dotted path and the
// struct field that holds it.
type key struct {
	path  string
	index []int
}

// schemaKeys lists every key config.Config accepts in its file, from the
// yaml tags: structs nest (time.Duration is a value), maps and lists are
// values.
func schemaKeys(t reflect.Type, prefix string, index []int) []key {
	var keys []key
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		path, idx := prefix+name, append(slices.Clone(index), i)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
			keys = append(keys, schemaKeys(f.Type, path+".", idx)...)
			continue
		}
		keys = append(keys, key{path, idx})
	}
	return keys
}

// hasKey reports whether the configuration schema accepts a key.
func hasKey(path string) bool {
	for _, k := range schemaKeys(reflect.TypeFor[config.Config](), "", nil) {
		if k.path == path {
			return true
		}
	}
	return false
}

// valueAt is the value of a dotted key in cfg.
func valueAt(cfg *config.Config, path string) any {
	for _, k := range schemaKeys(reflect.TypeFor[config.Config](), "", nil) {
		if k.path == path {
			return reflect.ValueOf(*cfg).FieldByIndex(k.index).Interface()
		}
	}
	return nil
}

// deployOverrides are the keys deploy/zerotouch.yaml sets to something
// other than the default, on purpose: where the image keeps its data and
// TLS files, and listeners a container publishes.
var deployOverrides = map[string]string{
	"data_dir":       "/var/lib/zerotouch",
	"listen.grpc":    "0.0.0.0:8444",
	"listen.http":    "0.0.0.0:8443",
	"listen.mqtt":    "0.0.0.0:8883",
	"listen.metrics": "0.0.0.0:9464",
	"tls.cert_file":  "/etc/zerotouch/tls/server.pem",
	"tls.key_file":   "/etc/zerotouch/tls/server-key.pem",
}

// lookup finds a dotted path in a YAML mapping.
func lookup(n *yaml.Node, path string) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, name := range strings.Split(path, ".") {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == name {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// empty is true for a nil or empty map or list and for zero values.
func empty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Map, reflect.Slice:
		return v.Len() == 0
	}
	return v.IsZero()
}

// show renders a value as the YAML file would say it.
func show(v reflect.Value) string {
	if d, ok := v.Interface().(time.Duration); ok {
		return d.String()
	}
	return fmt.Sprintf("%#v", v.Interface())
}

// TestConfigFileHasEveryKey: deploy/zerotouch.yaml ("every key, with its
// default") names every key the configuration schema accepts, each with its
// default value (but the deliberate deployOverrides), and the file loads
// through the real loader. A key added to internal/config fails this test
// until the file has it.
func TestConfigFileHasEveryKey(t *testing.T) {
	file := filepath.Join(root(t), "deploy", "zerotouch.yaml")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var fromFile config.Config
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&fromFile); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	defaults := config.Default()
	keys := schemaKeys(reflect.TypeFor[config.Config](), "", nil)
	if len(keys) < 50 {
		t.Fatalf("only %d keys found in config.Config: the walk is broken", len(keys))
	}
	for _, k := range keys {
		if lookup(&doc, k.path) == nil {
			t.Errorf("%s: key %s is missing (default %s)", file, k.path, show(reflect.ValueOf(defaults).FieldByIndex(k.index)))
			continue
		}
		got := reflect.ValueOf(fromFile).FieldByIndex(k.index)
		if want, ok := deployOverrides[k.path]; ok {
			if got.Interface() != want {
				t.Errorf("%s: %s = %s, want the deployment's %q", file, k.path, show(got), want)
			}
			continue
		}
		def := reflect.ValueOf(defaults).FieldByIndex(k.index)
		if !(empty(got) && empty(def)) && !reflect.DeepEqual(got.Interface(), def.Interface()) {
			t.Errorf("%s: %s = %s, but the default is %s", file, k.path, show(got), show(def))
		}
	}
	for path := range deployOverrides {
		if !hasKey(path) {
			t.Errorf("deployOverrides names %s, which the schema no longer has", path)
		}
	}

	// The real loader, as `zerotouch serve --config` runs it in the image
	// (the TLS files exist there; here they are stand-ins).
	dir := t.TempDir()
	env := map[string]string{
		"ZEROTOUCH_TLS_CERT_FILE": filepath.Join(dir, "server.pem"),
		"ZEROTOUCH_TLS_KEY_FILE":  filepath.Join(dir, "server-key.pem"),
	}
	for _, f := range env {
		os.WriteFile(f, nil, 0o600)
	}
	cfg, err := config.Load([]string{"--config", file}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config.Load(%s): %v", file, err)
	}
	if cfg.DataDir != "/var/lib/zerotouch" || cfg.Storage.Backend != "embedded" || cfg.Log.Format != "json" {
		t.Errorf("loaded %+v", cfg)
	}
}
