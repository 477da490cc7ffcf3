# Sourced by bench/run.sh (uses its LAZARE, PORT, W, PIDS, IMG, HERE, row,
# log). Peak RSS of the real `lazare serve` while 40 simulated agents go
# through the whole API at once (hello, events, the image download, log
# upload), against python3 -m http.server serving the same 40 downloads.

AGENTS=${BENCH_AGENTS:-40}

# The rules every bench server uses: the tests' (the `test` image for every
# PC, no countdown).
RULES=$HERE/../tests/fixtures/rules-test.toml

# $1 data dir, $2 port, $3 log; sets SERVER (its PID). Waits for the banner.
start_server() {
	mkdir -p "$1"
	[ -f "$1/lazare.toml" ] || cp "$RULES" "$1/lazare.toml"
	# Plain HTTP (--http), as the python3 http.server peer it is measured against.
	"$LAZARE" serve --http --no-tracker --data "$1" --listen "127.0.0.1:$2" >"$3" 2>&1 &
	SERVER=$!
	PIDS+=("$SERVER")
	local i
	for i in $(seq 1 100); do
		grep -q '^images:' "$3" 2>/dev/null && return 0
		kill -0 "$SERVER" 2>/dev/null || break
		sleep 0.2
	done
	log "lazare serve did not start: $(cat "$3")"
	return 1
}

# kB value of a /proc/PID/status field (VmHWM: peak RSS, VmRSS: now).
proc_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
kb_mb() { python3 -c "print(f'{$1/1024:.1f} MB')"; }
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

server_load() {
	local data=$W/load-data sp=$((PORT + 2)) pp=$((PORT + 3)) out idle hwm py_hwm
	log "lazare serve + $AGENTS simulated agents (hello, events, $(basename "$IMG") download, log)"
	start_server "$data" "$sp" "$W/load-server.log" || return 1
	"$LAZARE" image add --data "$data" "$IMG" >"$W/load-add.log" 2>&1
	idle=$(proc_kb "$SERVER" VmRSS)
	out=$(python3 "$HERE/agents.py" "http://127.0.0.1:$sp" "$AGENTS") || {
		log "the agents failed: $out"
		row "Peak RSS: lazare serve, $AGENTS agents" "failed" "" "$out"
		return 0
	}
	hwm=$(proc_kb "$SERVER" VmHWM)
	kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true
	local secs req bytes
	secs=$(field "$out" seconds); req=$(field "$out" requests); bytes=$(field "$out" bytes)

	log "python3 -m http.server serving the same $AGENTS downloads"
	python3 -m http.server --bind 127.0.0.1 --directory "$data/images" "$pp" >/dev/null 2>&1 &
	local py=$!
	PIDS+=("$py")
	sleep 1
	local py_out
	py_out=$(BENCH_IMAGE_PATH="/$(basename "$IMG")" BENCH_IMAGE_SIZE=$(stat -c %s "$IMG") \
		python3 "$HERE/agents.py" "http://127.0.0.1:$pp" "$AGENTS" --download-only) || py_out=""
	py_hwm=$(proc_kb "$py" VmHWM)
	kill "$py" 2>/dev/null || true; wait "$py" 2>/dev/null || true

	local peer="http.server $(kb_mb "$py_hwm")"
	[ -n "$py_out" ] && peer="$peer in $(field "$py_out" seconds)s" || peer="$peer (its downloads failed)"
	row "Peak RSS: lazare serve, $AGENTS agents" "$(kb_mb "$hwm") (idle $(kb_mb "$idle"))" \
		"$peer" "VmHWM; $AGENTS agents at once, downloads included"
	row "  $AGENTS agents: whole API, time" "${secs}s, $req requests" \
		"$(python3 -c "print(f'{$bytes/1e9:.1f} GB')") served" \
		"$(python3 -c "print(f'{$bytes/1e6/$secs:.0f} MB/s, {($hwm-$idle)/1024/$AGENTS:.2f} MB per agent')")"
}
