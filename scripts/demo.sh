#!/usr/bin/env bash
# Plays the seed's story for a person: a defender network namespace runs
# crowdsec (agent + LAPI, Rampart's rules), the firewall bouncer and a web
# server; an attacker namespace brute-forces ssh (lines appended to the
# auth log the agent tails) and scans the web server. Each step shows the
# command it runs and its output. From a terminal, the demo then waits for
# Enter with everything still running, listing commands to explore it with;
# otherwise it stops at once. Needs root; touches only the two namespaces
# it creates, and removes them when it stops.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/build/bin"
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces)"; exit 1; }
for t in ip nft curl; do command -v $t >/dev/null || { echo "make demo needs $t"; exit 1; }; done

def=rdemo-def att=rdemo-att
defip=198.51.100.1 attip=198.51.100.2
work="$(mktemp -d /tmp/rampart-demo.XXXXXX)"
pids=()
cleanup() {
	# everything started in the namespaces, whatever started it
	for ns in $def $att; do
		ip netns pids $ns 2>/dev/null | xargs -r kill 2>/dev/null || true
	done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	ip netns del $def 2>/dev/null || true
	ip netns del $att 2>/dev/null || true
	echo "demo files left in $work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# look shows the command about to run here, whose output follows.
look() { printf '   \033[36m$ %s\033[0m\n' "$*"; }
indef() { ip netns exec $def "$@"; }
inatt() { ip netns exec $att "$@"; }

step "Two network namespaces: defender $defip, attacker $attip"
ip netns del $def 2>/dev/null || true; ip netns del $att 2>/dev/null || true
ip netns add $def; ip netns add $att
ip link add vdemo0 netns $def type veth peer name vdemo1 netns $att
ip -n $def link set lo up; ip -n $att link set lo up
ip -n $def addr add $defip/24 dev vdemo0; ip -n $att addr add $attip/24 dev vdemo1
ip -n $def link set vdemo0 up; ip -n $att link set vdemo1 up

step "Configuration in $work (Rampart's rules from $root/rules)"
mkdir -p "$work/acquis.d" "$work/data"
cat > "$work/config.toml" <<CONF
[config_paths]
config_dir = "$work"
data_dir = "$work/data"
hub_dir = "$root/rules"
[crowdsec_service]
acquisition_dir = "$work/acquis.d"
[db_config]
db_path = "$work/crowdsec.db"
[api.client]
credentials_path = "$work/creds.toml"
[api.server]
listen_uri = "127.0.0.1:8080"
profiles_path = "$work/profiles.toml"
CONF
cp "$root/config/profiles.toml" "$work/profiles.toml"
cat > "$work/acquis.d/demo.toml" <<ACQ
[[source]]
source = "file"
filenames = ["$work/access.log"]
labels = { type = "nginx" }

[[source]]
source = "file"
filenames = ["$work/auth.log"]
labels = { type = "syslog" }
ACQ
touch "$work/access.log" "$work/auth.log"
# --warning: the demo shows results, not cscli's info lines (opening or
# creating the database); warnings and errors still show.
cscli() { indef "$bin/cscli" --warning -c "$work/config.toml" "$@"; }

step "Start crowdsec (agent + LAPI) and the web server in the defender namespace"
cscli machines add demo --auto --force >/dev/null
ip netns exec $def "$bin/crowdsec" -c "$work/config.toml" >"$work/crowdsec.out" 2>&1 & pids+=($!)
ip netns exec $def "$bin/demoweb" -listen "$defip:80" -log "$work/access.log" >"$work/demoweb.out" 2>&1 & pids+=($!)
for _ in $(seq 50); do indef curl -s -o /dev/null http://127.0.0.1:8080/health && break; sleep 0.2; done
indef curl -s -o /dev/null http://127.0.0.1:8080/health || { echo "crowdsec did not start:"; tail -n 20 "$work/crowdsec.out"; exit 1; }
echo "   crowdsec logs to $work/crowdsec.out"

step "Start the firewall bouncer (nftables)"
key=$(cscli bouncers add demo-fw -o raw)
printf 'mode = "nftables"\napi_url = "http://127.0.0.1:8080/"\napi_key = "%s"\n' "$key" > "$work/bouncer.toml"
ip netns exec $def "$bin/crowdsec-firewall-bouncer" -c "$work/bouncer.toml" >"$work/bouncer.out" 2>&1 & pids+=($!)
sleep 1
look "nft list tables"; indef nft list tables

step "The attacker reaches the web server"
inatt curl -s --connect-timeout 1 "http://$defip/" && echo "   (answered)"

step "ssh brute force: 10 failed logins from $attip appended to $work/auth.log"
for i in $(seq 10); do
	echo "$(date '+%b %e %H:%M:%S') defender sshd[$((4000+i))]: Failed password for root from $attip port $((50000+i)) ssh2" >> "$work/auth.log"
done
sleep 1
look "cscli decisions list"; cscli decisions list
look "cscli alerts list"; cscli alerts list

step "The attacker's connection now times out"
look "curl --connect-timeout 1 http://$defip/"
if inatt curl -s -o /dev/null --connect-timeout 1 "http://$defip/"; then echo "   unexpected: it connected"; else echo "   timed out: the kernel drops its packets"; fi
look "nft list ruleset | grep $attip"; indef nft list ruleset | grep -F "$attip" || true

step "Unban, then a web scan: 404s and sensitive files"
cscli decisions delete --ip "$attip"
sleep 1
for p in /.env /.git/config /wp-config.php.bak /backup.sql /admin.php /phpmyadmin/ /.aws/credentials /server-status /config.json /db.sql /old/ /test.php; do
	inatt curl -s -o /dev/null --connect-timeout 1 -A "Mozilla/5.0" "http://$defip$p" || break
done
sleep 1
look "cscli decisions list"; cscli decisions list
if inatt curl -s -o /dev/null --connect-timeout 1 "http://$defip/"; then echo "   unexpected: it connected"; else echo "   timed out again: banned for the scan"; fi

step "Done. Logs: $work/{crowdsec,bouncer,demoweb}.out"
if [ -t 0 ] && [ -t 1 ]; then
	# Everything still runs: the commands below work until Enter is pressed.
	echo "   The demo keeps running. In another terminal (as root), try:"
	for c in "ip netns exec $def $bin/cscli -c $work/config.toml decisions list" \
		"ip netns exec $def $bin/cscli -c $work/config.toml alerts list" \
		"ip netns exec $def nft list ruleset" \
		"ip netns exec $att curl --connect-timeout 1 http://$defip/" \
		"tail -f $work/crowdsec.out"; do
		printf '   \033[36m$ %s\033[0m\n' "$c"
	done
	read -r -p "   Press Enter to stop the demo and delete the namespaces $def and $att. " _ || true
else
	echo "   (run it from a terminal to keep it running and explore it)"
fi
