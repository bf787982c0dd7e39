#!/usr/bin/env bash
# make-secrets.sh: the cluster token and TLS files the swarm stack reads as
# Docker secrets: a private CA, one certificate for every canopy node (mutual
# TLS: servers require a client certificate signed by the CA) naming the
# stack's service names, and a random token.
#   deploy/swarm/make-secrets.sh DIR [EXTRA_SAN...]   e.g. IP:10.0.0.5 DNS:vm1
# Writes DIR/{token,ca.pem,ca.key,node.pem,node.key}; keep ca.key offline.
set -euo pipefail
dir=${1:?usage: make-secrets.sh DIR [EXTRA_SAN...]}
shift
mkdir -p "$dir"
umask 077
san="DNS:scheduler,DNS:ps1,DNS:ps2,DNS:worker1,DNS:worker2,DNS:worker3,DNS:localhost,IP:127.0.0.1"
for extra in "$@"; do san="$san,$extra"; done
openssl rand -hex 32 > "$dir/token"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
  -subj "/CN=canopy cluster CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=canopy node" -keyout "$dir/node.key" -out "$dir/node.csr" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" > "$dir/node.ext"
openssl x509 -req -in "$dir/node.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 825 -extfile "$dir/node.ext" -out "$dir/node.pem" 2>/dev/null
rm -f "$dir/node.csr" "$dir/node.ext" "$dir/ca.srl"
echo "make-secrets: wrote $dir/{token,ca.pem,ca.key,node.pem,node.key} (SAN $san)"
