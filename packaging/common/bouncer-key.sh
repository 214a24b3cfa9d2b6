# --- shared by both packages' postinst (mkdeb inlines this file) ---
# Whichever of crowdsec and crowdsec-firewall-bouncer is configured second
# finds both the local API's credentials and the bouncer's TOML, registers
# the bouncer with the local API and writes the key into that TOML. A LAPI
# on another host is never contacted: the messages say what to run there.

CS_CONFIG=/etc/crowdsec/config.toml
CS_CREDS=/etc/crowdsec/local_api_credentials.toml
CSCLI=/usr/bin/cscli
BOUNCER_NAME=crowdsec-firewall-bouncer
BOUNCER_TOML=/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.toml
# Set to 1 by register_bouncer when it wrote a new key, or when it said
# how to get one.
BOUNCER_REGISTERED=0
BOUNCER_HELPED=0

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

# creds_value KEY prints a top-level string of this machine's credentials
# (url, ca_cert_path); nothing when the file or the key is missing.
creds_value() {
	[ -f "$CS_CREDS" ] || return 0
	sed -n -E "s|^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"([^\"]*)\".*|\1|p" "$CS_CREDS" | head -n 1
}

# creds_url prints the LAPI URL of this machine's credentials: url, or the
# first of urls (several LAPIs of one database); nothing without either.
creds_url() {
	[ -f "$CS_CREDS" ] || return 0
	awk '
	/^[[:space:]]*\[/ { exit }
	/^[[:space:]]*urls?[[:space:]]*=/ { want = 1 }
	want && match($0, /"[^"]*"/) { print substr($0, RSTART + 1, RLENGTH - 2); exit }
	' "$CS_CREDS"
}

# is_local_url: a LAPI URL on this host (loopback, or a unix socket).
is_local_url() {
	case "$1" in
	/* | http://127.* | https://127.* | http://localhost[:/]* | https://localhost[:/]* | http://\[::1\]* | https://\[::1\]*) return 0 ;;
	esac
	return 1
}

# remote_bouncer_help URL REASON: the bouncer's key must come from a LAPI
# on another host, which no script here can reach: say exactly what to run
# there and what to write here.
remote_bouncer_help() {
	ca=$(creds_value ca_cert_path)
	{
		echo "crowdsec-firewall-bouncer: $2: the bouncer's API key must come from the LAPI at $1."
		echo "  1. On the LAPI host run:  cscli bouncers add $BOUNCER_NAME-$(uname -n)"
		echo "  2. In $BOUNCER_TOML set:"
		echo "       api_url = \"$1\""
		if grep -Eq '^[[:space:]]*urls[[:space:]]*=' "$CS_CREDS" 2>/dev/null; then
			echo "       (or api_urls = [...] with every LAPI of the credentials' urls)"
		fi
		echo "       api_key = \"<the key printed by step 1>\""
		case "$1" in
		https://*)
			if [ -n "$ca" ]; then
				echo "       ca_cert_path = \"$ca\"   (the CA this host's agent trusts for that LAPI)"
			else
				echo "       ca_cert_path = \"/etc/crowdsec/ssl/ca.pem\"   (only if the LAPI's certificate is signed by your own CA)"
			fi
			;;
		esac
		echo "  3. Then run:  systemctl restart $BOUNCER_NAME"
	} >&2
}

# register_bouncer never fails the installation: a bouncer without a key
# only means the firewall is not fed yet, and the message says how to fix it.
# It registers with the local API only: on a host whose agent reports to
# another LAPI, or without a local API, it says what to do there instead.
register_bouncer() {
	[ -f "$BOUNCER_TOML" ] || return 0
	bouncer_has_credentials && return 0
	if [ ! -x "$CSCLI" ] || [ ! -f "$CS_CONFIG" ]; then
		echo "crowdsec-firewall-bouncer: no local crowdsec yet; it gets its API key when the crowdsec package is configured." >&2
		echo "  (for a remote LAPI: cscli bouncers add $BOUNCER_NAME there, then set api_url and api_key in $BOUNCER_TOML)" >&2
		BOUNCER_HELPED=1
		return 0
	fi
	remote=$(creds_url)
	if ! url=$(lapi_url); then
		remote_bouncer_help "${remote:-https://<LAPI host>:8080/}" "this host has no local API ([api.server] enable = false in $CS_CONFIG)"
		BOUNCER_HELPED=1
		return 0
	fi
	if [ -n "$remote" ] && ! is_local_url "$remote"; then
		remote_bouncer_help "$remote" "this host's agent reports to another host"
		BOUNCER_HELPED=1
		return 0
	fi
	if [ ! -f "$CS_CREDS" ]; then
		echo "crowdsec-firewall-bouncer: no local crowdsec yet; it gets its API key when the crowdsec package is configured." >&2
		echo "  (for a remote LAPI: cscli bouncers add $BOUNCER_NAME there, then set api_url and api_key in $BOUNCER_TOML)" >&2
		BOUNCER_HELPED=1
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
		BOUNCER_HELPED=1
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
