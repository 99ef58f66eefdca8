//go:build ignore

// Command kubecheck validates Kubernetes manifests offline: each document of
// each file (or of standard input) is decoded strictly into its Kubernetes
// API type (client-go's scheme of the built-in kinds): an unknown kind, an
// unknown or duplicate field, or a value of the wrong type is an error. It
// also checks what the API server would refuse by name: object, label,
// container and port names.
//
// Its dependencies are those helm already brings into tools/go.mod, and it
// runs from the repository root with
//
//	go run -modfile=tools/go.mod deploy/kubecheck/main.go FILE...
//
// The "ignore" build constraint keeps it out of the main module's package
// list (go vet ./..., go mod tidy), whose go.mod does not carry Kubernetes.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

func main() {
	files := os.Args[1:]
	if len(files) == 0 {
		files = []string{"-"}
	}
	failed := false
	for _, f := range files {
		var r io.Reader = os.Stdin
		if f != "-" {
			fh, err := os.Open(f)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			defer fh.Close()
			r = fh
		}
		n, errs := check(r)
		for _, err := range errs {
			fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			failed = true
		}
		fmt.Printf("%s: %d objects, %d errors\n", f, n, len(errs))
	}
	if failed {
		os.Exit(1)
	}
}

// check decodes every document of r strictly and reports each problem.
func check(r io.Reader) (int, []error) {
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var errs []error
	n := 0
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return n, errs
		}
		if err != nil {
			return n, append(errs, err)
		}
		if isEmpty(doc) {
			continue
		}
		n++
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %v", n, err))
			continue
		}
		where := fmt.Sprintf("%s %s/%s", head.APIVersion, head.Kind, head.Metadata.Name)
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", where, err))
			continue
		}
		for _, e := range names(obj) {
			errs = append(errs, fmt.Errorf("%s: %s", where, e))
		}
	}
}

func isEmpty(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		if l := strings.TrimSpace(line); l != "" && l != "---" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// names checks the names the API server validates.
func names(obj runtime.Object) []string {
	var out []string
	m, err := meta.Accessor(obj)
	if err != nil {
		return []string{err.Error()}
	}
	bad := func(what string, msgs []string) {
		for _, msg := range msgs {
			out = append(out, what+": "+msg)
		}
	}
	if m.GetName() == "" {
		out = append(out, "metadata.name is empty")
	}
	bad("metadata.name "+m.GetName(), validation.IsDNS1123Subdomain(m.GetName()))
	labels := func(where string, l map[string]string) {
		for k, v := range l {
			bad(where+" key "+k, validation.IsQualifiedName(k))
			bad(where+" value "+v, validation.IsValidLabelValue(v))
		}
	}
	labels("metadata.labels", m.GetLabels())
	var pod *corev1.PodTemplateSpec
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		pod = &o.Spec.Template
		bad("statefulset name", validation.IsDNS1123Label(o.Name))
	case *appsv1.Deployment:
		pod = &o.Spec.Template
	case *corev1.Service:
		bad("service name", validation.IsDNS1035Label(o.Name))
		for _, p := range o.Spec.Ports {
			if p.Name != "" {
				bad("service port name "+p.Name, validation.IsValidPortName(p.Name))
			}
		}
	}
	if pod != nil {
		labels("pod labels", pod.Labels)
		for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
			bad("container name "+c.Name, validation.IsDNS1123Label(c.Name))
			for _, p := range c.Ports {
				if p.Name != "" {
					bad("container port name "+p.Name, validation.IsValidPortName(p.Name))
				}
			}
		}
		for _, v := range pod.Spec.Volumes {
			bad("volume name "+v.Name, validation.IsDNS1123Label(v.Name))
		}
	}
	return out
}
