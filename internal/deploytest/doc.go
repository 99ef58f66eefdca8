// Package deploytest checks the deploy kit in deploy/ against the code it
// deploys, here, without a container engine or a cluster: the image
// (deploy/Dockerfile built with buildah and run), the Helm chart (helm lint,
// helm template, the rendered manifests decoded strictly into the
// Kubernetes API types, and their wiring), the compose file, the systemd
// unit (systemd-analyze verify), deploy/local-cluster.sh (a Redis Cluster,
// two replicas and a hub agent as real processes) and deploy/zerotouch.yaml
// (every key of the configuration schema, with its default). It has no
// non-test code.
package deploytest
