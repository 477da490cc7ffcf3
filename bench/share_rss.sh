#!/bin/bash
# lazare-share's memory while the agent streams an image through it (issue
# 15): a seed and a fetch on loopback, a random file of BENCH_SHARE_MIB MiB
# read from the fetch's /image into sha256sum, the pieces stored on disk.
# For each tokio setting (--threads N, 0 = current_thread) and memory cap (a
# cgroup v1 memory limit; page cache counts in it), prints the fetch's peak
# RSS (VmHWM), the cgroup's peak, the time and whether the hash matched.
# Needs root and a cgroup v1 memory controller at /sys/fs/cgroup/memory.
#
# Env: SHARE (the binary; default the static one of `make share`),
# BENCH_SHARE_MIB (200), BENCH_SHARE_THREADS ("2 1 0"),
# BENCH_SHARE_CAPS ("none 64M 40M 24M 16M").
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SHARE=${SHARE:-$HERE/../target/x86_64-unknown-linux-gnu/agent/lazare-share}
MIB=${BENCH_SHARE_MIB:-200}
THREADS=${BENCH_SHARE_THREADS:-2 1 0}
CAPS=${BENCH_SHARE_CAPS:-none 64M 40M 24M 16M}
CGROOT=/sys/fs/cgroup/memory
CG=
W=$(mktemp -d /var/tmp/lzshare.XXXXXX)
SEED_PID=
cleanup() {
	[ -n "$SEED_PID" ] && kill -TERM "$SEED_PID" 2>/dev/null && wait "$SEED_PID" 2>/dev/null || true
	[ -n "$CG" ] && rmdir "$CG" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/seed"
head -c "${MIB}M" /dev/urandom > "$W/seed/image.bin"
want=$(sha256sum < "$W/seed/image.bin" | cut -d' ' -f1)
"$SHARE" create --file "$W/seed/image.bin" --out "$W/image.torrent" > /dev/null
"$SHARE" seed --torrent "$W/image.torrent" --file "$W/seed/image.bin" --peer-port 16900 \
	> "$W/seed.out" 2> "$W/seed.err" &
SEED_PID=$!
until grep -q ready "$W/seed.out"; do sleep 0.2; done

printf '%-8s %-6s %10s %10s %12s %8s  %s\n' threads cap "VmHWM" "RssAnon" "cgroup peak" "time" result
for threads in $THREADS; do
	for cap in $CAPS; do
		rm -rf "$W/store" "$W/fetch.out"
		# A cgroup per run: its peak and OOM-kill count start at zero.
		CG=$CGROOT/lzshare-$$-$threads-$cap
		mkdir "$CG"
		if [ "$cap" = none ]; then echo -1; else echo "$cap"; fi > "$CG/memory.limit_in_bytes"
		# The fetch joins the cgroup before it execs, so its whole life is capped.
		sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$CG" "$SHARE" --threads "$threads" \
			fetch --torrent "$W/image.torrent" --store "$W/store" --peer-port 16901 \
			--http 127.0.0.1:18901 --peer 127.0.0.1:16900 > "$W/fetch.out" 2> "$W/fetch.err" &
		pid=$!
		for _ in $(seq 100); do
			grep -q ready "$W/fetch.out" 2>/dev/null && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		start=$(date +%s.%N)
		got=$(curl -sS --fail http://127.0.0.1:18901/image 2>/dev/null | sha256sum | cut -d' ' -f1) || true
		secs=$(echo "$(date +%s.%N) - $start" | bc)
		hwm=$(awk '/VmHWM/ {print $2 " kB"}' "/proc/$pid/status" 2>/dev/null || echo gone)
		# After the stream: the heap's share of it (the rest is the binary's pages).
		anon=$(awk '/RssAnon/ {print $2 " kB"}' "/proc/$pid/status" 2>/dev/null || echo gone)
		peak=$(( $(cat "$CG/memory.max_usage_in_bytes") / 1024 / 1024 ))
		result=ok
		[ "$got" = "$want" ] || result="FAILED ($(tail -n 1 "$W/fetch.err" | cut -c1-60))"
		grep -q 'oom_kill [1-9]' "$CG/memory.oom_control" 2>/dev/null && result="$result, oom kill"
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		printf '%-8s %-6s %10s %10s %9s MiB %7.1fs  %s\n' "$threads" "$cap" "$hwm" "$anon" "$peak" "$secs" "$result"
		rmdir "$CG"
		CG=
	done
done
