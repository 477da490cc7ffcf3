# Sourced by bench/run.sh (uses its LAZARE, PORT, W, PIDS, IMG, row, log and
# server_load.sh's start_server). The smallest RAM at which a real install
# completes: for each size, a blank qemu PC (i440FX, SeaBIOS, one 8 GB IDE
# disk, TCG) boots a lazare ISO and installs the `test` image from a real
# `lazare serve` on loopback. Success is the server's word: the machine's
# status `installed`. Each attempt is bounded by BENCH_INSTALL_TIMEOUT.
#
# Env: BENCH_RAM_SIZES (MB, one attempt per word, default three at 192 and
# three at 128, as issue 17 asks: "3 of 3"; empty: skipped),
# BENCH_INSTALL_TIMEOUT (seconds per attempt, default 1800: 128 MB took
# 1189 s under TCG on a loaded 2-core host, 512 MB 206 s).

RAM_SIZES=${BENCH_RAM_SIZES-192 192 192 128 128 128}
ATTEMPT=0
INSTALL_TIMEOUT=${BENCH_INSTALL_TIMEOUT:-1800}
DONE_LINE='installed; restarting into the new system'

# Stops `lazare vm` $1 and its qemu: it runs in its own session (setsid) and
# keeps qemu in its process group (timeout --foreground).
stop_group() {
	kill -TERM -- "-$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# Why an install stopped, from its serial log $1 (first match wins).
why_failed() {
	local pat
	for pat in 'Kernel panic[^\r]*' 'Out of memory: Killed process [^\r]*' 'oom-kill[^\r]*' \
		'Technical detail: [^\r]*' 'Initramfs unpacking failed[^\r]*'; do
		if grep -aoE "$pat" "$1" | head -n 1 | grep -q .; then
			grep -aoE "$pat" "$1" | head -n 1 | cut -c1-100
			return
		fi
	done
	echo "no install end in the serial log"
}

# The machine's status on the server at 127.0.0.1:$1 (one machine, data dir
# $2: reads need its admin token), with its last event when not installed:
# where a failed install stopped.
machine_status() {
	curl -fsS -H "Authorization: Bearer $(cat "$2/admin-token")" "http://127.0.0.1:$1/api/v1/machines" 2>/dev/null |
		python3 -c '
import json, sys
m = json.load(sys.stdin)
e = m[0].get("last_event") if m else None
last = " (last event: %s %s)" % (e["phase"], e["message"][:40]) if e and m[0]["status"] != "installed" else ""
print((m[0]["status"] if m else "none") + last)' 2>/dev/null ||
		echo "none"
}

# From the server at 127.0.0.1:$1: how long the configure phase took (its
# events) and the agent's "memory: ..." line from the log it uploaded (its
# own peak RSS, the RAM it saw, swap used); empty if none.
agent_memory() {
	local token
	token=$(cat "$2/admin-token")
	curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$1/api/v1/machines" 2>/dev/null | python3 -c '
import json, sys, urllib.request
m = json.load(sys.stdin)
if m:
    req = urllib.request.Request(sys.argv[1] + "/api/v1/machines/" + m[0]["id"],
                                 headers={"Authorization": "Bearer " + sys.argv[2]})
    d = json.load(urllib.request.urlopen(req))
    text = "".join(l.get("text", "") for l in d.get("logs", []))
    hit = [l for l in text.splitlines() if "memory: agent peak" in l]
    # How long the chroot steps (initramfs, GRUB) took: where low RAM hurts.
    from datetime import datetime
    at = {e["phase"]: datetime.fromisoformat(e["time"].replace("Z", "+00:00")) for e in d["events"]}
    took = ""
    if "configure" in at and "installed" in at:
        took = "configure %ds; " % (at["installed"] - at["configure"]).total_seconds()
    print(took + (hit[-1].split("memory: ", 1)[1] if hit else ""))
' "http://127.0.0.1:$1" "$token" 2>/dev/null || true
}

# One install at $1 MB on a fresh server and disk; sets RESULT to "passed
# SECONDS" or "failed: WHY"; keeps the serial log in $W/install-$1-N.log.
# (Not run in $(...): the PIDs it records must reach run.sh's cleanup.)
install_at() {
	ATTEMPT=$((ATTEMPT + 1))
	local mb=$1 sp=$((PORT + 4)) data=$W/ram-$1-$ATTEMPT serial=$W/install-$1-$ATTEMPT.log vm t0 status
	mkdir -p "$data"
	cp "$W/ram-seed/server.key" "$data/" && chmod 600 "$data/server.key"
	start_server "$data" "$sp" "$W/ram-server-$mb.log" || { RESULT="failed: server did not start"; return; }
	"$LAZARE" image add --data "$data" "$IMG" >/dev/null 2>&1
	qemu-img create -q -f qcow2 "$W/disk-$mb-$ATTEMPT.qcow2" 8G
	t0=$SECONDS
	setsid "$LAZARE" vm --iso "$W/ram.iso" --disk "$W/disk-$mb-$ATTEMPT.qcow2" --disk-interface ide \
		--memory "$mb" --server-port "$sp" --serial-log "$serial" >/dev/null 2>&1 &
	vm=$!
	PGROUPS+=("$vm")
	# The agent restarts the PC at the end and the VM runs with -no-reboot:
	# qemu exits. A panic or the agent's failure screen ends the wait early.
	while kill -0 "$vm" 2>/dev/null && ((SECONDS - t0 < INSTALL_TIMEOUT)); do
		grep -aqE 'Kernel panic|Technical detail: ' "$serial" 2>/dev/null && { sleep 3; break; }
		sleep 2
	done
	local took=$((SECONDS - t0))
	stop_group "$vm"
	status=$(machine_status "$sp" "$data")
	MEMORY=$(agent_memory "$sp" "$data")
	rm -f "$W/disk-$mb-$ATTEMPT.qcow2"
	kill "$SERVER" 2>/dev/null || true
	wait "$SERVER" 2>/dev/null || true
	if [ "$status" = installed ] && grep -aq "$DONE_LINE" "$serial"; then
		RESULT="passed ${took}s${MEMORY:+; $MEMORY}"
	elif ((took >= INSTALL_TIMEOUT)); then
		RESULT="failed: not installed within ${INSTALL_TIMEOUT}s (server: $status; $(why_failed "$serial"))"
	else
		RESULT="failed after ${took}s: server says $status; $(why_failed "$serial")${MEMORY:+; $MEMORY}"
	fi
}

ram_sweep() {
	local key mb result passed="" smallest=""
	local -A tried=() ok=()
	RAM_RESULTS=()
	log "smallest RAM: ISO for the install server on 127.0.0.1:$((PORT + 4))"
	# The key is made by a first server start, as a volunteer's is.
	start_server "$W/ram-seed" "$((PORT + 4))" "$W/ram-seed.log" || return 1
	kill "$SERVER" 2>/dev/null || true
	wait "$SERVER" 2>/dev/null || true
	key=$W/ram-server.pub
	"$LAZARE" key show --data "$W/ram-seed" >"$key"
	"$LAZARE" build --server "http://10.0.2.100:$((PORT + 4))" --key "$key" -o "$W/ram.iso" \
		>"$W/ram-build.log" 2>&1
	for mb in $RAM_SIZES; do
		log "install at $mb MB (TCG, up to ${INSTALL_TIMEOUT}s)"
		install_at "$mb"
		log "  $mb MB: $RESULT"
		RAM_RESULTS+=("$mb MB: $RESULT")
		tried[$mb]=$((${tried[$mb]:-0} + 1))
		if [[ $RESULT == passed* ]]; then
			ok[$mb]=$((${ok[$mb]:-0} + 1))
			passed="$passed $mb"
			if [ -z "$smallest" ] || ((mb < smallest)); then smallest=$mb; fi
		fi
	done
	row "Smallest RAM for an install" "${smallest:-none} MB" "tried: $RAM_SIZES" \
		"passed:${passed:- none} (goal 128 MB; BIOS, 1 IDE disk, test image)"
	for mb in $(printf '%s\n' "${!tried[@]}" | sort -n); do
		row "  installs at $mb MB" "${ok[$mb]:-0} of ${tried[$mb]} passed" "" "goal: 3 of 3"
	done
	for result in "${RAM_RESULTS[@]}"; do row "" "" "" "$result"; done
}
