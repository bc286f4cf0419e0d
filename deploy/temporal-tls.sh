#!/bin/sh
# Issues the certificates of Temporal's mutual TLS for docker-compose.yml: a private CA, the
# server's certificate and paysaga's client certificate. Run it once on the host:
#   sh deploy/temporal-tls.sh [folder]   (default deploy/temporal-tls; TEMPORAL_TLS_DIR in compose)
# The folder gets ca.crt (which both ends trust), server.crt/.key (Temporal's frontend and its
# internal traffic, named `temporal` as compose reaches it, and localhost), client.crt/.key (the
# API, the workers, the one-shot jobs, the UI and the CLI). The CA's key goes to <folder>-ca/,
# which is mounted nowhere. Existing certificates are kept: remove both folders to issue new
# ones, then `docker compose up -d --force-recreate`. Your own PKI may fill the folder instead.
set -eu

DIR="${1:-$(dirname "$0")/temporal-tls}"
CA_DIR="$DIR-ca"
NAME="${TEMPORAL_TLS_SERVER_NAME:-temporal}"
DAYS="${TEMPORAL_TLS_DAYS:-825}"

if [ -f "$DIR/ca.crt" ]; then
    echo "$DIR/ca.crt exists: keeping the certificates there"
    exit 0
fi
mkdir -p "$DIR" "$CA_DIR"
chmod 700 "$CA_DIR"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$DAYS" \
    -subj "/CN=paysaga Temporal CA" -keyout "$CA_DIR/ca.key" -out "$DIR/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

# issue <file name> <common name> <extended key usages> <subject alternative names>
issue() {
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
        -keyout "$DIR/$1.key" -out "$CA_DIR/$1.csr"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
        "$3" "$4" >"$CA_DIR/$1.ext"
    openssl x509 -req -in "$CA_DIR/$1.csr" -CA "$DIR/ca.crt" -CAkey "$CA_DIR/ca.key" \
        -CAserial "$CA_DIR/ca.srl" -CAcreateserial -days "$DAYS" -extfile "$CA_DIR/$1.ext" -out "$DIR/$1.crt"
    rm "$CA_DIR/$1.csr" "$CA_DIR/$1.ext"
}
# The server's certificate is also its client one: Temporal's own services call its frontend.
issue server "$NAME" serverAuth,clientAuth "DNS:$NAME,DNS:localhost,IP:127.0.0.1"
issue client paysaga clientAuth "DNS:paysaga"

# The containers run as their own users: isolation is by what is mounted, not by file modes.
chmod 644 "$DIR"/*.crt "$DIR"/*.key
echo "Temporal TLS certificates in $DIR (the CA's key in $CA_DIR)"
