# Sourced by bench/run.sh (uses its AGENT, W, row and log). Power-on to the
# login screen and to the desktop of the two desktop images on the PCs they
# are for: `light` on a 256 MB PC with a Cirrus card, `standard` on 1 GB with
# plain VGA. The e2e_desktop VM test (tests/e2e_desktop.rs) installs each with
# the default rules, boots the disk and prints `desktop PROFILE: ...`:
# - greeter: with autologin off (a site with personal accounts), power-on to
#   LightDM's login screen running;
# - desktop: with the default rules' autologin, power-on to the programs that
#   draw the desktop running (IceWM; XFCE's panel and background), seen by
#   the test a second or two late;
# - the note: with autologin, X starting (the screen leaving the text
#   console) and the desktop's session manager starting.
# All from qemu's start (BIOS and GRUB's 5 s included); the greeter, X and
# the session read from the processes' age in the guest.
#
# Runs only when both images are in ~/.cache/lazare/images: the test would
# otherwise build them first (3 and 12 min measured). 21 min of TCG.

desktop_boot() {
	local missing="" p line x s d g
	for p in light standard; do
		if ! ls ~/.cache/lazare/images/*/"$p"-*.tar.zst >/dev/null 2>&1; then
			missing="$missing $p"
		fi
	done
	if [ -n "$missing" ]; then
		row "Power-on to desktop (light, standard)" "not measured" "" \
			"no cached image:$missing (lazare image build --profile light --profile standard)"
		return 0
	fi
	log "desktop: tests/e2e_desktop.rs, two installs and boots under TCG (~21 min)"
	local out=$W/desktop.log
	if ! (cd "$HERE/.." && LAZARE_EMBED_AGENT=$AGENT LAZARE_AGENT=$AGENT \
		${CARGO:-cargo} test --locked --release -p lazare --test e2e_desktop \
		-- --test-threads=1 --nocapture) >"$out" 2>&1; then
		tail -n 40 "$out" >&2
		return 1
	fi
	# The test's own lines (install time, screenshots): $W goes at exit.
	grep -a "^desktop " "$out" >&2 || true
	for p in light standard; do
		line=$(grep -a "^desktop $p:" "$out" | tail -n 1)
		x=$(sed -nE 's/.*power-on to X ([0-9]+) s.*/\1/p' <<<"$line")
		s=$(sed -nE 's/.* session ([0-9]+) s .*/\1/p' <<<"$line")
		d=$(sed -nE 's/.* desktop drawn ([0-9]+) s.*/\1/p' <<<"$line")
		g=$(sed -nE 's/.* login screen ([0-9]+) s.*/\1/p' <<<"$line")
		case $p in
		light) p="light, 256 MB, cirrus" ;;
		standard) p="standard, 1 GB, VGA" ;;
		esac
		row "Desktop power-on: $p" "greeter ${g:-?} s, desktop ${d:-?} s" "" \
			"autologin: X ${x:-?} s, session ${s:-?} s; TCG, from qemu start"
	done
}
