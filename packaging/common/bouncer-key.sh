# --- shared by both packages' postinst (mkdeb inlines this file) ---
# Whichever of crowdsec and crowdsec-firewall-bouncer is configured second
# finds both the local API's credentials and the bouncer's TOML, registers
# the bouncer with the local API and writes the key into that TOML.

CS_CONFIG=/etc/crowdsec/config.toml
CS_CREDS=/etc/crowdsec/local_api_credentials.toml
CSCLI=/usr/bin/cscli
BOUNCER_NAME=crowdsec-firewall-bouncer
BOUNCER_TOML=/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.toml
# Set to 1 by register_bouncer when it wrote a new key.
BOUNCER_REGISTERED=0

# lapi_url prints the URL local clients reach the LAPI at, from
# [api.server] listen_uri (a wildcard address becomes loopback, a TLS
# certificate makes it https); it fails when the LAPI is disabled here.
lapi_url() {
	awk '
	/^[[:space:]]*\[/ { sec = $0; sub(/#.*/, "", sec); gsub(/[[:space:]]/, "", sec); next }
	sec == "[api.server]" && /^[[:space:]]*listen_uri[[:space:]]*=/ {
		v = $0; sub(/^[^=]*=[[:space:]]*"/, "", v); sub(/".*/, "", v); uri = v
	}
	sec == "[api.server]" && /^[[:space:]]*enable[[:space:]]*=[[:space:]]*false/ { off = 1 }
	sec == "[api.server.tls]" && /^[[:space:]]*cert_file[[:space:]]*=[[:space:]]*"[^"]/ { tls = 1 }
	END {
		if (off) exit 1
		if (uri == "") uri = "127.0.0.1:8080"
		if (uri ~ /^:/) uri = "127.0.0.1" uri
		sub(/^0\.0\.0\.0:/, "127.0.0.1:", uri)
		sub(/^\[::\]:/, "[::1]:", uri)
		print (tls ? "https" : "http") "://" uri "/"
	}' "$CS_CONFIG"
}

# set_top_key replaces a top-level `key = ...` line of the bouncer's TOML,
# or adds one at the top (before any table) when the line is missing.
set_top_key() {
	if grep -Eq "^[[:space:]]*$1[[:space:]]*=" "$BOUNCER_TOML"; then
		sed -i -E "s|^[[:space:]]*$1[[:space:]]*=.*|$1 = \"$2\"|" "$BOUNCER_TOML"
	else
		sed -i "1i $1 = \"$2\"" "$BOUNCER_TOML"
	fi
}

# bouncer_has_credentials: a non-empty api_key, or a client certificate.
bouncer_has_credentials() {
	grep -Eq '^[[:space:]]*api_key[[:space:]]*=[[:space:]]*"[^"]+"' "$BOUNCER_TOML" ||
		grep -Eq '^[[:space:]]*cert_path[[:space:]]*=[[:space:]]*"[^"]+"' "$BOUNCER_TOML"
}

# register_bouncer never fails the installation: a bouncer without a key
# only means the firewall is not fed yet, and the message says how to fix it.
register_bouncer() {
	[ -f "$BOUNCER_TOML" ] || return 0
	bouncer_has_credentials && return 0
	if [ ! -x "$CSCLI" ] || [ ! -f "$CS_CREDS" ] || [ ! -f "$CS_CONFIG" ]; then
		echo "crowdsec-firewall-bouncer: no local crowdsec yet; it gets its API key when the crowdsec package is configured." >&2
		echo "  (for a remote LAPI: cscli bouncers add $BOUNCER_NAME there, then set api_url and api_key in $BOUNCER_TOML)" >&2
		return 0
	fi
	if ! url=$(lapi_url); then
		echo "crowdsec-firewall-bouncer: the local API is disabled in $CS_CONFIG ([api.server] enable = false);" >&2
		echo "  register the bouncer on your LAPI host (cscli bouncers add $BOUNCER_NAME) and set api_url and api_key in $BOUNCER_TOML" >&2
		return 0
	fi
	# The TOML has no key, so any earlier registration's key is lost: replace it.
	"$CSCLI" -c "$CS_CONFIG" bouncers delete "$BOUNCER_NAME" --ignore-missing >/dev/null 2>&1 || true
	if ! key=$("$CSCLI" -c "$CS_CONFIG" --error bouncers add "$BOUNCER_NAME" -o raw); then
		key=""
	fi
	case "$key" in
	"" | *[!A-Za-z0-9+/=]*)
		echo "crowdsec-firewall-bouncer: registering with the local API failed; run:" >&2
		echo "  cscli bouncers add $BOUNCER_NAME -o raw   (then put the key in api_key in $BOUNCER_TOML)" >&2
		echo "  systemctl restart $BOUNCER_NAME" >&2
		return 0
		;;
	esac
	set_top_key api_key "$key"
	set_top_key api_url "$url"
	chmod 0600 "$BOUNCER_TOML"
	BOUNCER_REGISTERED=1
	echo "crowdsec-firewall-bouncer: registered with the local API at $url (key written to $BOUNCER_TOML)"
}
# start_bouncer starts (or restarts, $1) the bouncer service. Its start
# waits for a first sync with the LAPI, so with a local LAPI that is not
# running it would hang the installation until the start times out: then
# it only says what to do.
start_bouncer() {
	if grep -Eq '^[[:space:]]*api_url[[:space:]]*=[[:space:]]*"https?://(127\.0\.0\.1|localhost|\[::1\])[:/]' "$BOUNCER_TOML" &&
		! systemctl --quiet is-active crowdsec.service 2>/dev/null; then
		echo "crowdsec-firewall-bouncer: not started, as the local API (crowdsec) is not running; once it is: systemctl start crowdsec-firewall-bouncer" >&2
		return 0
	fi
	systemctl "$1" crowdsec-firewall-bouncer.service ||
		echo "crowdsec-firewall-bouncer: the service failed to $1; see: journalctl -u crowdsec-firewall-bouncer" >&2
}
# --- end of shared part ---
