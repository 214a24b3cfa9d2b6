#!/usr/bin/env bash
# Runs the whole appliance from the source tree in the foreground: config
# and data under build/run (RUN_DIR overrides), the agent (Rampart's rules
# from rules/, reading this machine's auth and nginx logs), the LAPI on
# 127.0.0.1:8080 with an embedded SQLite, and the firewall bouncer in
# nftables mode. Ctrl-C stops everything and removes the bouncer's
# firewall objects.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
run="${RUN_DIR:-$root/build/run}"
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
bcfg="$run/etc/crowdsec-firewall-bouncer.toml"
if [ ! -f "$bcfg" ] || grep -q '^api_key = ""' "$bcfg"; then
	"$bin/cscli" -c "$cfg" bouncers delete run-fw >/dev/null 2>&1 || true
	key="$("$bin/cscli" -c "$cfg" bouncers add run-fw -o raw)"
	sed -e "s#^api_key = .*#api_key = \"$key\"#" \
	    -e "s#^api_url = .*#api_url = \"http://$listen/\"#" \
	    -e "s#^mode = .*#mode = \"nftables\"#" \
	    "$root/config/crowdsec-firewall-bouncer.toml" > "$bcfg"
	chmod 600 "$bcfg"
fi

pids=()
stop() {
	trap - INT TERM EXIT
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	# Ctrl-C leaves no firewall objects behind: the bouncer removes only
	# its own tables and sets.
	"$bin/crowdsec-firewall-bouncer" -c "$bcfg" -flush || echo "could not remove the bouncer's firewall objects: run $bin/crowdsec-firewall-bouncer -c $bcfg -flush" >&2
	echo "Rampart stopped"
}
trap stop INT TERM EXIT

"$bin/crowdsec" -c "$cfg" "$@" & pids+=($!)
for _ in $(seq 100); do
	curl -s -o /dev/null "http://$listen/health" 2>/dev/null && break
	kill -0 "${pids[0]}" 2>/dev/null || { echo "crowdsec did not start" >&2; exit 1; }
	sleep 0.1
done
"$bin/crowdsec-firewall-bouncer" -c "$bcfg" & pids+=($!)
echo "Rampart running from $run (config $cfg, bouncer $bcfg, nftables)"
echo "  try: $bin/cscli -c $cfg decisions list"
echo "       nft list table ip crowdsec"
echo "  Ctrl-C stops everything and removes Rampart's firewall objects"
wait -n "${pids[@]}" || true
