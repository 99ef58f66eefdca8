#!/usr/bin/env bash
# The whole test suite: formatting, vet, tidy modules, buf lint, generated
# code drift, the race-enabled tests, and short runs of every fuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

# The Redis backend's tests start real redis-server processes; the TPM
# simulator (cgo) links the system OpenSSL.
if ! dpkg -s libssl-dev >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  step "installing libssl-dev (apt), for the TPM simulator"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq libssl-dev >/dev/null
fi
if ! command -v swtpm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  step "installing swtpm (apt), the TPM the Azure TPM SDK talks to"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq swtpm >/dev/null
fi
if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    step "installing redis-server (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is not installed: the Redis tests will be skipped (in CI they fail)." >&2
  fi
fi

# DPS over MQTT is also tested with a client nobody here wrote: Debian's
# mosquitto-clients (mosquitto_pub, mosquitto_sub, mosquitto_rr).
if ! command -v mosquitto_rr >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    step "installing mosquitto-clients (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq mosquitto-clients >/dev/null
  else
    echo "mosquitto-clients is not installed: the mosquitto MQTT test will be skipped (in CI it fails)." >&2
  fi
fi

# The web console's browser tests (internal/console) drive headless
# Chromium (Debian's chromium) with chromedp.
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    step "installing chromium (apt), for the web console's browser tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is not installed: the web console's browser tests will be skipped (in CI they fail)." >&2
  fi
fi

# The deploy kit's tests (internal/deploytest): buildah builds and runs the
# container image (busybox-static is the shell of its stand-in golang base),
# systemd-analyze checks the unit, shellcheck the scripts.
deploy_pkgs=()
command -v buildah >/dev/null 2>&1 || deploy_pkgs+=(buildah)
dpkg -s busybox-static >/dev/null 2>&1 || deploy_pkgs+=(busybox-static)
command -v systemd-analyze >/dev/null 2>&1 || deploy_pkgs+=(systemd)
command -v shellcheck >/dev/null 2>&1 || deploy_pkgs+=(shellcheck)
if [ ${#deploy_pkgs[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    step "installing ${deploy_pkgs[*]} (apt), for the deploy kit's tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${deploy_pkgs[@]}" >/dev/null
  else
    echo "${deploy_pkgs[*]} not installed: those deploy kit tests will be skipped (in CI they fail)." >&2
  fi
fi

# The DPS compatibility suite runs the real Azure IoT SDK packages from npm
# (the device SDK over HTTPS and over MQTT, the service SDK).
if command -v npm >/dev/null 2>&1; then
  step "npm ci (compat/: the Azure IoT device and service SDKs)"
  (cd compat && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
else
  echo "npm is not installed: the Azure IoT SDK compatibility suite will be skipped (in CI it fails)." >&2
fi

step "gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...

step "deploy kit scripts (bash -n, shellcheck) and deploy/kubecheck (vet)"
for script in deploy/*.sh; do bash -n "$script"; done
if command -v shellcheck >/dev/null 2>&1; then
  shellcheck deploy/*.sh
elif [ -n "${CI:-}" ]; then
  echo "shellcheck is required in CI (apt-get install shellcheck)"; exit 1
else
  echo "shellcheck is not installed: the deploy scripts are not linted." >&2
fi
go vet -modfile=tools/go.mod deploy/kubecheck/main.go

step "modules tidy"
go mod tidy -diff
(cd tools && go mod tidy -diff)

step "buf lint (buf builds from tools/go.mod on first use)"
go tool -modfile=tools/go.mod buf lint

step "generated code is current"
go tool -modfile=tools/go.mod buf generate
if [ -d .git ] && [ -n "$(git status --porcelain -- proto internal/server/openapi)" ]; then
  echo "buf generate changed generated files; run it and commit the result:"
  git status --porcelain -- proto internal/server/openapi
  git diff --stat -- proto internal/server/openapi
  exit 1
fi

step "fuzzers (short runs; the seed corpora also run in go test)"
for target in \
  ./enrollment:FuzzValidateRegistrationID \
  ./enrollment:FuzzParseCertificatePEM \
  ./enrollment:FuzzValidateInitialTwin \
  ./attestation/x509:FuzzLeafChecks \
  ./attestation/x509:FuzzCheckCRL \
  ./allocation:FuzzValidateHostname \
  ./attestation/tpm:FuzzParsePublic \
  ./attestation/tpm:FuzzEKFromPEM \
  ./attestation/tpm:FuzzParseEKCertificate \
  ./attestation/symkey:FuzzParse \
  ./internal/issuance:FuzzParseCSR \
  ./internal/storage/record:FuzzDecodeCompact \
  ./internal/provisioning:FuzzOwnership \
  ./internal/mqtt:FuzzParseTopic \
  ./internal/mqtt:FuzzParseUsername; do
  pkg=${target%%:*} name=${target##*:}
  # A fuzzer stopping mid-input can end with "context deadline exceeded";
  # a rerun tells that apart from a real finding, which go test saves under
  # testdata/fuzz and replays first, so it fails again.
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "${FUZZTIME:-5s}" "$pkg" ||
    go test -run '^$' -fuzz "^${name}\$" -fuzztime "${FUZZTIME:-5s}" "$pkg"
done

step "go test -race"
go test -race -count=1 ./...
