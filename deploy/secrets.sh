#!/usr/bin/env bash
# Makes the secrets a Zerotouch deployment needs, for evaluation: a data key
# (shared by every replica), a CA and a server certificate signed by it.
#
#   deploy/secrets.sh DIR [--owner UID] [NAME...]
#
# DIR/data.key       base64 of 32 random bytes (secrets.data_key_file)
# DIR/ca.pem         the CA clients trust (--ca-file); DIR/ca-key.pem its key
# DIR/server.pem     the server certificate (tls.cert_file), for localhost,
#                    127.0.0.1 and each NAME (the first NAME, or localhost, is
#                    the DPS service host name); DIR/server-key.pem its key
#
# Files are mode 0600; --owner UID (as root) gives them to that user, e.g.
# 65532, the container image's user, for deploy/compose.yaml. Existing files
# are kept, so running it again changes nothing. Needs openssl.
set -euo pipefail

usage() { echo "usage: $0 DIR [--owner UID] [NAME...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
dir=$1
shift
owner=""
names=()
while [ $# -gt 0 ]; do
  case $1 in
    --owner) [ $# -ge 2 ] || usage; owner=$2; shift 2 ;;
    -*) usage ;;
    *) names+=("$1"); shift ;;
  esac
done

mkdir -p "$dir"
umask 077
if [ ! -s "$dir/data.key" ]; then
  head -c 32 /dev/urandom | base64 >"$dir/data.key"
fi
if [ ! -s "$dir/ca.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=Zerotouch evaluation CA" -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
fi
if [ ! -s "$dir/server.pem" ]; then
  san=""
  for n in "${names[@]}" localhost; do san+="DNS:$n,"; done
  san+="IP:127.0.0.1"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=${names[0]:-localhost}" -keyout "$dir/server-key.pem" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n' "$san" >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
    -days 825 -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
  rm -f "$dir/server.csr" "$dir/server.ext" "$dir/ca.srl"
fi
if [ -n "$owner" ]; then
  chown "$owner:$owner" "$dir"/data.key "$dir"/server.pem "$dir"/server-key.pem "$dir"/ca.pem
fi
echo "$dir: data.key ca.pem server.pem server-key.pem"
