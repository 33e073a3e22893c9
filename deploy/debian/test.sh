#!/usr/bin/env bash
# Installs a minehound .deb on this machine, uses it as an operator would,
# removes it, and checks that only configuration is left; then purges it.
# Needs root, dpkg, systemd-analyze (package systemd), curl and a machine
# where minehound is not installed (it refuses otherwise).
#
#   deploy/debian/test.sh PACKAGE.deb
set -euo pipefail
cd "$(dirname "$0")/../.."

deb="${1:?usage: deploy/debian/test.sh PACKAGE.deb}"
fail() {
    echo "test.sh: FAIL: $*" >&2
    exit 1
}
step() { echo "-- $*"; }

[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
[ -f "$deb" ] || fail "$deb: no such file"
if dpkg-query -W -f '${Status}' minehound 2>/dev/null | grep -q 'installed\|config-files'; then
    fail "minehound is already installed here; this test would replace it"
fi
user_existed=no
getent passwd minehound >/dev/null && user_existed=yes

work="$(mktemp -d "${TMPDIR:-/tmp}/minehound-deb.XXXXXX")"
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
    dpkg -P minehound >/dev/null 2>&1 || true
    [ "$user_existed" = no ] && { deluser --system --quiet minehound 2>/dev/null || true; }
    rm -rf -- "$work"
}
trap cleanup EXIT

step "contents of $(basename -- "$deb")"
[ "$(dpkg-deb -f "$deb" Package)" = minehound ] || fail "package name"
dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|' >"$work/contents"
for path in /usr/bin/minehound \
    /usr/share/man/man1/minehound.1.gz /usr/share/man/man1/minehound-scan.1.gz \
    /usr/share/man/man1/minehound-serve.1.gz \
    /usr/share/bash-completion/completions/minehound \
    /usr/share/zsh/vendor-completions/_minehound \
    /usr/share/fish/vendor_completions.d/minehound.fish \
    /etc/minehound/config.toml /etc/minehound/serve.env \
    /usr/share/doc/minehound/copyright; do
    grep -qxF "$path" "$work/contents" || fail "$path is not in the package"
done
unit_in_package="$(grep -E '^/(usr/)?lib/systemd/system/minehound\.service$' "$work/contents")" ||
    fail "no systemd unit in the package"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$work/conffiles"
for conf in /etc/minehound/config.toml /etc/minehound/serve.env; do
    grep -qxF "$conf" "$work/conffiles" || fail "$conf is not a conffile"
done

step "the package's own files scan clean"
# An image with minehound installed must not fail a minehound gate.
dpkg-deb -x "$deb" "$work/root"
"$work/root/usr/bin/minehound" scan --no-config --no-cache --no-progress --format json \
    "dir:$work/root" >"$work/self.json" 2>"$work/self.log" ||
    { cat "$work/self.log"; fail "minehound finds something in its own package"; }

step "dpkg -i"
dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log"; fail "dpkg -i"; }
[ "$(command -v minehound)" = /usr/bin/minehound ] || fail "minehound is not /usr/bin/minehound on PATH"

step "minehound --version"
version="$(minehound --version)"
echo "$version"
package_version="$(dpkg-query -W -f '${Version}' minehound)"
case "$version" in
    "minehound ${package_version%-*} (signatures "*")") ;;
    *) fail "--version says ${version@Q}; the package is $package_version" ;;
esac
file /usr/bin/minehound 2>/dev/null | grep -q 'not stripped' && fail "the installed binary is not stripped"
# The tests' fault switch (the fault-injection feature) is never shipped.
grep -qa 'MINEHOUND-FAULT:' /usr/bin/minehound && fail "the packaged binary carries the test-only fault switch"

step "a scan of the demo image through the installed binary"
status=0
minehound scan --no-config --no-cache --no-progress --format json oci:testdata/demo \
    >"$work/report.json" 2>"$work/scan.log" || status=$?
[ "$status" = 1 ] || { cat "$work/scan.log"; fail "scan of the demo exited $status, not 1 (findings)"; }
python3 - "$work/report.json" <<'PY' || fail "the demo's report"
import json, sys
report = json.load(open(sys.argv[1]))
stats = report["stats"]
assert stats["files_scanned"] > 0 and stats["layers"] > 0, stats
rules = {f["rule"] for f in report["findings"]}
assert report["findings"] and any(r.startswith("MH-") for r in rules), rules
print(f"   {len(report['findings'])} findings; {stats['files_scanned']} files scanned in {stats['layers']} layers: {sorted(rules)}")
PY

step "man pages and completions"
zcat /usr/share/man/man1/minehound-serve.1.gz | grep -q '^\.TH minehound-serve' || fail "minehound-serve(1)"
bash -c 'source /usr/share/bash-completion/completions/minehound && complete -p minehound' >/dev/null ||
    fail "the bash completion does not register"

step "the service user and the unit"
passwd="$(getent passwd minehound)" || fail "no minehound user"
case "$passwd" in
    minehound:x:*:*:*:/var/lib/minehound:/usr/sbin/nologin) ;;
    *) fail "minehound user: $passwd" ;;
esac
[ "$(id -u minehound)" -lt 1000 ] || fail "minehound is not a system user"
unit="$unit_in_package"
[ -f "$unit" ] || fail "$unit is not installed"
# verify warns on stderr and fails on errors; both count.
systemd-analyze verify "$unit" >"$work/verify.log" 2>&1 || { cat "$work/verify.log"; fail "systemd-analyze verify $unit"; }
if grep -v '^$' "$work/verify.log" | grep -qi 'minehound'; then
    cat "$work/verify.log"
    fail "systemd-analyze verify $unit warned"
fi

step "the unit's ExecStart as the service user, with the packaged config"
exec_start="$(sed -n 's/^ExecStart=//p' "$unit")"
[ -n "$exec_start" ] || fail "no ExecStart in $unit"
install -d -o minehound -g minehound "$work/state" "$work/cache"
chmod 755 "$work"
# What systemd gives the service: its user, the unit's environment, the env
# file; a free port instead of the default (the address is logged).
(
    set -a
    # shellcheck disable=SC1091
    . /etc/minehound/serve.env
    set +a
    export MINEHOUND_STATE_DIR="$work/state" MINEHOUND_CACHE_DIR="$work/cache" MINEHOUND_LISTEN=127.0.0.1:0 \
        MINEHOUND_LOG_FORMAT=json
    # shellcheck disable=SC2086 # ExecStart is split into words as systemd does.
    exec setpriv --reuid=minehound --regid=minehound --init-groups $exec_start
) >"$work/serve.log" 2>&1 &
server=$!
address=""
for _ in $(seq 100); do
    address="$(grep -oE '"address":"127\.0\.0\.1:[0-9]+"' "$work/serve.log" | head -n1 | cut -d'"' -f4 || true)"
    [ -n "$address" ] && address="http://$address" && break
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; fail "the service exited"; }
    sleep 0.1
done
[ -n "$address" ] || { cat "$work/serve.log"; fail "the service logged no address"; }
curl -fsS "$address/readyz" >/dev/null || { cat "$work/serve.log"; fail "$address/readyz"; }
curl -fsS "$address/api/v1/metadata" | grep -q '"minehound"' || fail "$address/api/v1/metadata"
kill -TERM "$server"
wait "$server" || fail "the service did not stop cleanly on SIGTERM"
server=""
[ -n "$(find "$work/state" -mindepth 1 -user minehound -print -quit)" ] ||
    echo "   (the service wrote no state: no jobs ran)"

step "dpkg -r leaves configuration only"
dpkg -r minehound >"$work/dpkg-r.log" 2>&1 || { cat "$work/dpkg-r.log"; fail "dpkg -r"; }
[ "$(dpkg-query -W -f '${Status}' minehound)" = "deinstall ok config-files" ] || fail "state after dpkg -r"
while IFS= read -r path; do
    case "$path" in
        /etc/minehound/config.toml | /etc/minehound/serve.env)
            [ -f "$path" ] || fail "dpkg -r removed the configuration $path" ;;
        */) ;;
        *) if [ -e "$path" ] || [ -L "$path" ]; then fail "dpkg -r left $path"; fi ;;
    esac
done <"$work/contents"
left="$(dpkg -L minehound 2>/dev/null | grep -vxE '/etc|/etc/minehound(/config\.toml|/serve\.env)?' || true)"
[ -z "$left" ] || fail "dpkg still lists: $left"

step "dpkg -P removes it"
dpkg -P minehound >/dev/null 2>&1 || fail "dpkg -P"
[ ! -e /etc/minehound ] || fail "dpkg -P left /etc/minehound"
echo "ok: $(basename -- "$deb") installs, scans, serves, and removes cleanly"
