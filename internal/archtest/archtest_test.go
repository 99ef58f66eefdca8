package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/zerotouch/zerotouch"

// deps lists the packages pkg imports, transitively, outside the standard
// library.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", module+"/"+pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	var list []string
	for _, l := range strings.Fields(string(out)) {
		if l != module+"/"+pkg {
			list = append(list, l)
		}
	}
	return list
}

func TestDomainPackagesStayPure(t *testing.T) {
	for _, pkg := range []string{"enrollment", "allocation", "attestation", "attestation/x509", "attestation/tpm"} {
		for _, d := range deps(t, pkg) {
			// go-tpm's tpm2 package is the TPM structures and crypto.
			if d != module+"/internal/fault" && !strings.HasPrefix(d, "golang.org/x/crypto") && !strings.HasPrefix(d, "golang.org/x/sys") && !strings.HasPrefix(d, "github.com/google/go-tpm/") {
				t.Errorf("%s imports %s", pkg, d)
			}
		}
	}
}

func TestOnlyWiringImportsBackends(t *testing.T) {
	for _, pkg := range []string{"internal/server", "internal/provisioning", "internal/admin", "internal/registry", "internal/access"} {
		for _, d := range deps(t, pkg) {
			if strings.HasPrefix(d, module+"/internal/storage") || strings.HasPrefix(d, "go.etcd.io/bbolt") {
				t.Errorf("%s imports %s", pkg, d)
			}
		}
	}
}

func TestStorageAndDomainNeverSpeakGRPC(t *testing.T) {
	for _, pkg := range []string{"internal/storage/embedded", "internal/storage/redis", "internal/provisioning", "internal/admin", "internal/registry", "enrollment", "allocation"} {
		for _, d := range deps(t, pkg) {
			if strings.HasPrefix(d, "google.golang.org/grpc") || strings.HasPrefix(d, "google.golang.org/protobuf") || strings.HasPrefix(d, module+"/proto") {
				t.Errorf("%s imports %s", pkg, d)
			}
		}
	}
}
