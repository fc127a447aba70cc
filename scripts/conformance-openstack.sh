#!/usr/bin/env bash
# Drives the real OpenStack client (`openstack`, python3-openstackclient) against a live
# image service and checks every command succeeds with the output Glance gives.
#   scripts/conformance-openstack.sh                 # starts `imgport serve` on a free port
#   ENDPOINT=http://127.0.0.1:9393 scripts/conformance-openstack.sh   # any running service (e.g. Glance)
# Exit status 0 when every check passes; prints one line per check.
set -uo pipefail
cd "$(dirname "$0")/.."
command -v openstack >/dev/null || { echo "SKIP: openstack client not installed"; exit 77; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/imgport-conf.XXXXXX")
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

if [ -z "${ENDPOINT:-}" ]; then
  PORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
  node --import tsx src/cli/main.ts serve --port "$PORT" --data-dir "$WORK/data" --log-level error >"$WORK/serve.log" 2>&1 &
  PID=$!
  ENDPOINT="http://127.0.0.1:$PORT"
  for _ in $(seq 1 100); do curl -sf -o /dev/null "$ENDPOINT/versions" && break; sleep 0.1; done
  curl -sf -o /dev/null "$ENDPOINT/versions" || { echo "FAIL: service did not start"; cat "$WORK/serve.log"; exit 1; }
fi

OS=(openstack --os-auth-type none --os-endpoint "$ENDPOINT" --os-image-api-version 2)
FAILS=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
# run NAME cmd...: runs an openstack command, keeps its stdout in $OUT
run() {
  local name=$1; shift
  if OUT=$("${OS[@]}" "$@" 2>"$WORK/err"); then pass "$name"; else fail "$name: $(tail -3 "$WORK/err")"; OUT=; fi
}
# expect NAME HAYSTACK NEEDLE
expect() { if grep -qF -- "$3" <<<"$2"; then pass "$1"; else fail "$1: expected '$3' in: $2"; fi; }
refuse() { if grep -qF -- "$3" <<<"$2"; then fail "$1: did not expect '$3' in: $2"; else pass "$1"; fi; }
# show ID: caches `image show -f json`; get KEY reads a field of it (dicts as Python repr)
show() { SHOW=$("${OS[@]}" image show "$1" -f json 2>/dev/null); }
get() { python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); v=d.get(sys.argv[2]); print(v if not isinstance(v,(dict,list)) else repr(v))' "$SHOW" "$1"; }

SUFFIX=$RANDOM
NAME="conf-$SUFFIX"
IMG="$WORK/disk.qcow2"
if command -v qemu-img >/dev/null; then qemu-img create -q -f qcow2 "$IMG" 64M; else
  # hand-made minimal qcow2 v2 header (64 MiB virtual), enough for format detection
  python3 - "$IMG" <<'PY'
import struct, sys
h = struct.pack('>IIQIIQIIQQIIQ', 0x514649fb, 2, 0, 0, 16, 64 << 20, 0, 1, 0x30000, 0x10000, 1, 0, 0)
open(sys.argv[1], 'wb').write(h.ljust(0x40000, b'\0'))
PY
fi
MD5=$(md5sum "$IMG" | cut -d' ' -f1)
SIZE=$(stat -c %s "$IMG")
PROJECT=0123456789abcdef0123456789abcdef

run "image create --file" image create --file "$IMG" --disk-format qcow2 --container-format bare --property conf=yes --tag conf-tag "$NAME"
expect "create prints the name" "$OUT" "$NAME"
expect "create prints disk_format" "$OUT" "qcow2"
ID=$("${OS[@]}" image show "$NAME" -f value -c id 2>/dev/null)
[ -n "$ID" ] && pass "image resolves by name" || fail "image resolves by name"

run "image show" image show "$ID" -f json
SHOW=$OUT
expect "show: status active" "$(get status)" "active"
expect "show: checksum is md5 of the file" "$(get checksum)" "$MD5"
expect "show: size" "$(get size)" "$SIZE"
expect "show: virtual_size from the qcow2 header" "$(get virtual_size)" "67108864"
expect "show: property" "$(get properties)" "'conf': 'yes'"
expect "show: tag" "$(get tags)" "conf-tag"

run "image create (second, raw, no data)" image create --disk-format raw --container-format bare --property conf=yes "$NAME-b"
run "image list" image list
expect "list has the image" "$OUT" "$ID"
run "image list --name" image list --name "$NAME"
expect "list --name finds it" "$OUT" "$ID"
refuse "list --name filters others" "$OUT" "$NAME-b"
run "image list --property" image list --property conf=yes -f value -c Name
expect "list --property has both" "$OUT" "$NAME-b"
run "image list --status active" image list --status active -f value -c ID
expect "list --status" "$OUT" "$ID"
run "image list --tag" image list --tag conf-tag -f value -c ID
expect "list --tag" "$OUT" "$ID"
run "image list --sort name:asc --limit 1" image list --property conf=yes --sort name:asc --limit 1 -f value -c Name
expect "list sorted and paged" "$OUT" "$NAME"
run "image list --long" image list --long

run "image set --property" image set --property extra=one --property os_distro=debian "$ID"
show "$ID"
expect "set --property shows" "$(get properties)" "'extra': 'one'"
run "image unset --property" image unset --property extra "$ID"
show "$ID"
refuse "unset --property removed it" "$(get properties)" "'extra'"
run "image set --tag" image set --tag second-tag "$ID"
show "$ID"
expect "set --tag shows" "$(get tags)" "second-tag"
run "image unset --tag" image unset --tag second-tag "$ID"
show "$ID"
refuse "unset --tag removed it" "$(get tags)" "second-tag"
run "image set --name --min-disk" image set --min-disk 2 --name "$NAME-renamed" "$ID"
show "$ID"
expect "renamed" "$(get name)" "$NAME-renamed"

run "image add project" image add project "$ID" "$PROJECT"
expect "add project prints pending" "$OUT" "pending"
run "image member list" image member list "$ID"
expect "member list shows the project" "$OUT" "$PROJECT"
run "image set --accept" image set --accept --project "$PROJECT" "$ID"
run "image member list (accepted)" image member list "$ID"
expect "member accepted" "$OUT" "accepted"
run "image remove project" image remove project "$ID" "$PROJECT"
run "image member list (empty)" image member list "$ID"
refuse "member removed" "$OUT" "$PROJECT"

run "image save --file" image save --file "$WORK/saved" "$ID"
[ "$(md5sum "$WORK/saved" | cut -d' ' -f1)" = "$MD5" ] && pass "saved file matches" || fail "saved file matches"

run "image set --deactivate" image set --deactivate "$ID"
show "$ID"
expect "status deactivated" "$(get status)" "deactivated"
run "image set --activate" image set --activate "$ID"
show "$ID"
expect "status active again" "$(get status)" "active"

run "image set --protected" image set --protected "$ID"
show "$ID"
expect "protected" "$(get protected)" "True"
if "${OS[@]}" image delete "$ID" >/dev/null 2>&1; then fail "delete of a protected image is refused"; else pass "delete of a protected image is refused"; fi
run "image set --unprotected" image set --unprotected "$ID"
run "image set --public" image set --public "$ID"
show "$ID"
expect "public" "$(get visibility)" "public"
run "image delete" image delete "$ID" "$NAME-b"
if "${OS[@]}" image show "$ID" >/dev/null 2>&1; then fail "deleted image is gone"; else pass "deleted image is gone"; fi

echo "$FAILS failure(s)"
[ "$FAILS" -eq 0 ]
