#!/usr/bin/env bash
# make-secrets.sh: the cluster token and TLS files the swarm stack reads as
# Docker secrets: a private CA, and one certificate per canopy node, each
# naming only that node (mutual TLS: servers require a client certificate
# signed by the CA, and clients check that the server's certificate names
# the host they dialled), and a random token.
#   deploy/swarm/make-secrets.sh DIR [NODE[=SAN,...]]...
# NODEs default to the stack's services: scheduler ps1 ps2 worker1 worker2
# worker3. Each certificate names DNS:<node>; add the addresses other VMs use
# to reach it, e.g. ps1=IP:10.0.0.12,DNS:vm2 (an IP is also written as a DNS
# name: mbedTLS 2.28, which nng uses, matches names against DNS entries only).
# The scheduler's also names localhost and 127.0.0.1 (health checks and
# `canopy tune` run inside its container).
# Writes DIR/{token,ca.pem,ca.key} and DIR/<node>.{pem,key}; keep ca.key
# offline, and give each VM only its own node's key.
set -euo pipefail
dir=${1:?usage: make-secrets.sh DIR [NODE[=SAN,...]]...}
shift
nodes=("$@")
[ ${#nodes[@]} -gt 0 ] || nodes=(scheduler ps1 ps2 worker1 worker2 worker3)
mkdir -p "$dir"
umask 077
openssl rand -hex 32 > "$dir/token"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
  -subj "/CN=canopy cluster CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
for spec in "${nodes[@]}"; do
  name=${spec%%=*}
  [[ $name =~ ^[A-Za-z0-9.-]+$ ]] || { echo "make-secrets: bad node name '$name'" >&2; exit 2; }
  san="DNS:$name"
  [ "$name" = scheduler ] && san="$san,DNS:localhost,IP:127.0.0.1,DNS:127.0.0.1"
  if [ "$spec" != "$name" ]; then
    IFS=, read -r -a extras <<< "${spec#*=}"
    for e in "${extras[@]}"; do
      san="$san,$e"
      [[ $e == IP:* ]] && san="$san,DNS:${e#IP:}"
    done
  fi
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=$name" -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" > "$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -extfile "$dir/$name.ext" -out "$dir/$name.pem" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
  echo "make-secrets: $dir/$name.{pem,key} (SAN $san)"
done
rm -f "$dir/ca.srl"
echo "make-secrets: wrote $dir/{token,ca.pem,ca.key} and one certificate per node"
