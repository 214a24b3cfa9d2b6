#!/usr/bin/env bash
# Runs Rampart from the source tree: config and data under build/run, the
# agent (Rampart's rules from rules/, reading this machine's auth and nginx
# logs) and the LAPI on 127.0.0.1:8080 with an embedded SQLite. Ctrl-C
# stops it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
run="$root/build/run"
bin="$root/build/bin"
mkdir -p "$run/etc/acquis.d" "$run/data"
listen="${LISTEN:-127.0.0.1:8080}"
# (Re)written when missing or from before the agent (no rules folder).
if ! grep -qs "^hub_dir = \"$root/rules/\"" "$run/etc/config.toml"; then
	sed -e "s#/etc/crowdsec/#$run/etc/#g" \
	    -e "s#/var/lib/crowdsec/data/#$run/data/#g" \
	    -e "s#listen_uri = \"127.0.0.1:8080\"#listen_uri = \"$listen\"#" \
	    -e "s#^hub_dir = .*#hub_dir = \"$root/rules/\"#" \
	    "$root/config/config.toml" > "$run/etc/config.toml"
	cp "$root/config/profiles.toml" "$run/etc/profiles.toml"
fi
if [ ! -f "$run/etc/acquis.d/local.toml" ]; then
	# The usual logs of this machine; missing ones are picked up if they
	# appear, and the agent warns about sources that stay silent.
	cat > "$run/etc/acquis.d/local.toml" <<EOF
[[source]]
source = "file"
filenames = ["/var/log/auth.log", "/var/log/secure"]
labels = { type = "syslog" }

[[source]]
source = "file"
filenames = ["/var/log/nginx/*access*.log", "/var/log/nginx/*error*.log"]
labels = { type = "nginx" }
EOF
fi
cfg="$run/etc/config.toml"
if [ ! -f "$run/etc/local_api_credentials.toml" ]; then
	"$bin/cscli" -c "$cfg" machines add localhost --auto --force -o human >/dev/null
fi
echo "Rampart running from $run (config $cfg)"
echo "  try: $bin/cscli -c $cfg decisions list"
exec "$bin/crowdsec" -c "$cfg" "$@"
