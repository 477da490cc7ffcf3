#!/usr/bin/env bash
# `make demo`: the whole system on this machine, the way a volunteer and a PC
# live it. Builds the test image (cached in ~/.cache/lazare), starts an install
# server on 127.0.0.1:8470 with its data in out/demo/data, builds
# out/demo/lazare.iso for it, installs an empty qemu PC from that ISO, boots
# the installed disk alone to its login prompt, then prints what happened.
#
# Everything it starts (server, VMs) is stopped on exit, by PID.
# Environment: LAZARE (the CLI, default target/release/lazare),
# LAZARE_DEMO_PORT (8470), LAZARE_DEMO_MEMORY (guest MB, 512).
set -euo pipefail

cd "$(dirname "$0")/.."
LAZARE=${LAZARE:-$PWD/target/release/lazare}
PORT=${LAZARE_DEMO_PORT:-8470}
MEMORY=${LAZARE_DEMO_MEMORY:-512}
OUT=$PWD/out/demo
DATA=$OUT/data
ISO=$OUT/lazare.iso
DISK=$OUT/disk.qcow2
SERVER_LOG=$OUT/server.log
INSTALL_LOG=$OUT/install-serial.log
BOOT_LOG=$OUT/boot-serial.log
# TCG (no KVM) is slow: generous limits, but never an endless wait.
INSTALL_MINUTES=45
BOOT_MINUTES=20

SERVER_PID=""
VM_PID=""

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() {
	printf '\n\033[1;31mmake demo failed: %s\033[0m\n' "$1" >&2
	[ $# -gt 1 ] && printf '%s\n' "${@:2}" >&2
	exit 1
}

stop_vm() {
	if [ -n "$VM_PID" ] && kill -0 "$VM_PID" 2>/dev/null; then
		# `lazare vm` runs in its own session: this reaches qemu and its timeout wrapper too.
		kill -TERM -- "-$VM_PID" 2>/dev/null || true
		wait "$VM_PID" 2>/dev/null || true
	fi
	VM_PID=""
}

cleanup() {
	stop_vm
	if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		echo "demo: stopped the install server (PID $SERVER_PID)"
	fi
}
trap cleanup EXIT
trap 'echo; fail "interrupted"' INT TERM

[ -x "$LAZARE" ] || fail "$LAZARE is missing" "Run \`make build\` first (make demo does it)."

# Nothing else may own the port the ISO will point at.
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
	fail "something already listens on 127.0.0.1:$PORT" \
		"Stop it (a previous demo's server?) or run: LAZARE_DEMO_PORT=8471 make demo"
fi

mkdir -p "$OUT"
step "1/6 Debian test image (first time: ~4 minutes with mmdebstrap; cached in ~/.cache/lazare after)"
"$LAZARE" image build --profile test --output "$OUT/images" ||
	fail "lazare image build failed (see above)." "It needs network access to deb.debian.org and mmdebstrap (make deps)."
IMAGE=$(ls "$OUT"/images/test-*.tar.zst | head -n1)

step "2/6 Install server on 127.0.0.1:$PORT (data: $DATA)"
# A fresh data dir each run: a new key, an empty machine list.
rm -rf "$DATA"
mkdir -p "$DATA"
# The tests' rules (every PC gets the small `test` image), with 5 s to
# read the disk plan on screen.
sed 's/^countdown_secs = 0$/countdown_secs = 5/' tests/fixtures/rules-test.toml >"$DATA/lazare.toml"
grep -q '^countdown_secs = 5$' "$DATA/lazare.toml" || fail "tests/fixtures/rules-test.toml has no countdown_secs = 0 line"
# No room (--no-tracker): the demo PC is on qemu's user network, which
# forwards only the server's port; a room needs a LAN (docs/volunteer.md).
"$LAZARE" serve --no-tracker --data "$DATA" --listen "127.0.0.1:$PORT" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 60); do
	grep -q '^images:' "$SERVER_LOG" 2>/dev/null && break
	kill -0 "$SERVER_PID" 2>/dev/null || fail "lazare serve stopped at start:" "$(cat "$SERVER_LOG")"
	sleep 0.5
done
grep -q '^images:' "$SERVER_LOG" || fail "lazare serve did not start within 30 s:" "$(cat "$SERVER_LOG")"
sed 's/^/    /' "$SERVER_LOG"
"$LAZARE" image add --data "$DATA" "$IMAGE" || fail "lazare image add failed (see above)."

step "3/6 Boot ISO for https://10.0.2.100:$PORT (the VM sees the server there)"
"$LAZARE" key show --data "$DATA" >"$OUT/server.pub"
# The server key is also its TLS key: the CD pins it (no CA, no clock).
"$LAZARE" build --server "https://10.0.2.100:$PORT" --key "$OUT/server.pub" --output "$ISO" ||
	fail "lazare build failed (see above)."

# Starts `lazare vm` in its own session (so it can be stopped as a group),
# its serial console shown here as it comes.
start_vm() {
	setsid "$LAZARE" vm --server-port "$PORT" --memory "$MEMORY" "$@" &
	VM_PID=$!
}

step "4/6 Installing an empty PC ($MEMORY MB, one 8 GB disk) from the ISO — takes several minutes under TCG"
rm -f "$DISK" "$INSTALL_LOG" "$BOOT_LOG"
qemu-img create -q -f qcow2 "$DISK" 8G || fail "qemu-img create failed (is qemu-utils installed? make deps)"
rm -rf "$OUT/screens"
start_vm --iso "$ISO" --disk "$DISK" --serial-log "$INSTALL_LOG" --screenshots "$OUT/screens"
# The agent restarts the PC when done; the VM is started with -no-reboot, so
# the VM stops there.
deadline=$((SECONDS + INSTALL_MINUTES * 60))
while kill -0 "$VM_PID" 2>/dev/null; do
	[ $SECONDS -lt $deadline ] || {
		stop_vm
		fail "the install did not finish within $INSTALL_MINUTES minutes" "Serial log: $INSTALL_LOG"
	}
	sleep 2
done
wait "$VM_PID" 2>/dev/null || true
VM_PID=""
grep -q 'installed; restarting into the new system' "$INSTALL_LOG" ||
	fail "the VM stopped before the install finished." "Last lines of $INSTALL_LOG:" "$(tail -n 25 "$INSTALL_LOG")"

step "5/6 Booting the installed disk alone (no CD)"
start_vm --disk "$DISK" --serial-log "$BOOT_LOG"
deadline=$((SECONDS + BOOT_MINUTES * 60))
until grep -q 'login:' "$BOOT_LOG" 2>/dev/null; do
	kill -0 "$VM_PID" 2>/dev/null || fail "the installed system stopped before its login prompt." "$(tail -n 25 "$BOOT_LOG")"
	[ $SECONDS -lt $deadline ] || fail "no login prompt within $BOOT_MINUTES minutes" "Serial log: $BOOT_LOG"
	sleep 2
done
sleep 1
stop_vm
echo
echo "demo: the installed system reached its login prompt; VM stopped."

step "6/6 What the server saw"
# Reads need the admin token (the server printed it at its first start);
# curl pins the server key as the CD does (-k: no CA check, the pin still is).
PIN=$(sed -n "s/^TLS: .*--pinnedpubkey '\(sha256\/\/[^']*\)'.*/\1/p" "$SERVER_LOG")
machines=$(curl -fsS -k --pinnedpubkey "$PIN" -H "Authorization: Bearer $(cat "$DATA/admin-token")" \
	"https://127.0.0.1:$PORT/api/v1/machines") ||
	fail "could not ask the server for its machines"
status=$(grep -o '"status":"[a-z]*"' <<<"$machines" | head -n1 | cut -d'"' -f4)
host=$(grep -o '"hostname":"[^"]*"' <<<"$machines" | head -n1 | cut -d'"' -f4)
id=$(grep -o '"id":"[^"]*"' <<<"$machines" | head -n1 | cut -d'"' -f4)
cat <<EOF

  ISO:         $ISO  (burn it, or dd it to a USB stick; it points at https://10.0.2.100:$PORT,
               rebuild with your server's address: lazare build --server https://SERVER:8470 ...)
  Dashboard:   https://127.0.0.1:$PORT/  (while a server runs: lazare serve --data $DATA --listen 127.0.0.1:$PORT;
               its certificate is self-signed for the server key: accept it once;
               log in with the admin token in $DATA/admin-token)
  Machine:     $host ($id) — status: $status
  Details:     https://127.0.0.1:$PORT/machines/$id
  Screens:     $OUT/screens/  (the PC's screen during the install, one PNG per change)
  Logs:        $SERVER_LOG, $INSTALL_LOG, $BOOT_LOG
  Disk:        $DISK  (lazare vm --disk $DISK boots it again)

EOF
[ "$status" = installed ] || fail "the server shows the machine as '$status', not 'installed'."
echo "make demo: done — a PC was installed from the ISO and booted alone."
