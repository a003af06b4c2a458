#!/bin/sh
# Makes the TLS material of the edgehome NATS servers: one private CA, and for each region a server
# certificate, shared by the region's edge and hub servers (also their client certificate on the hub's
# routes and the edge's leaf-node link, where it names the region's edge to the hub).
#   deploy/nats/make-certs.sh <out-dir> [region ...]     (regions default to cn-east ap-south eu-central)
# Writes <out-dir>/ca.crt and ca.key (keep ca.key offline), and <out-dir>/<region>/{ca.crt,server.crt,server.key}:
# mount <out-dir>/<region> as /etc/nats/certs of the region's two NATS servers. An existing CA in <out-dir> is reused, so
# a region can be added or re-issued later. Certificates last EDGEHOME_CERT_DAYS (default 825) days.
set -eu
out=${1:?usage: make-certs.sh <out-dir> [region ...]}
shift
[ "$#" -gt 0 ] || set -- cn-east ap-south eu-central
days=${EDGEHOME_CERT_DAYS:-825}
mkdir -p "$out"
umask 077
if [ ! -f "$out/ca.key" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
		-subj "/CN=edgehome NATS CA" -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
	chmod 644 "$out/ca.crt"
fi
for region in "$@"; do
	case "$region" in *[!a-z0-9-]*|"") echo "make-certs.sh: bad region id \"$region\"" >&2; exit 2 ;; esac
	dir="$out/$region"
	mkdir -p "$dir"
	chmod 755 "$dir"
	# "nats" is the compose service the groups dial; hub.<region>.edgehome.internal the name the edges and
	# the other hub servers dial the region's hub server at; nats.<region>.edgehome.internal the name the hub
	# maps the region's edge to (its leaf user); localhost for checks on the host.
	ext="subjectAltName=DNS:nats,DNS:nats.$region.edgehome.internal,DNS:hub.$region.edgehome.internal,DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth
keyUsage=digitalSignature,keyEncipherment"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=nats.$region.edgehome.internal" \
		-keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
	printf '%s\n' "$ext" > "$dir/server.ext"
	openssl x509 -req -in "$dir/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
		-days "$days" -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
	rm -f "$dir/server.csr" "$dir/server.ext"
	cp "$out/ca.crt" "$dir/ca.crt"
	# The NATS container runs as root and reads them; the CA certificate is public.
	chmod 644 "$dir/ca.crt" "$dir/server.crt"
	chmod 600 "$dir/server.key"
done
echo "certificates for $* in $out"
