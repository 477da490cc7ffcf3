#!/usr/bin/env bash
# `make deps`: the Debian packages every make target needs, installed in ONE
# apt transaction, then a check that every command (and file) the targets call
# is really there.
#
# Why one transaction: installing only the missing packages let apt resolve
# them alone. On a machine whose qemu-utils came from bookworm-backports,
# `apt-get install qemu-system-x86` removed qemu-utils to satisfy the bookworm
# qemu-system-common, and `make demo` stopped on `qemu-img: command not found`.
# Naming the whole set makes apt keep every named package or refuse with an
# error, never drop one silently. The check after it catches what apt cannot
# see (a package installed but a command removed by hand, a diverted binary).
#
# Environment (set by the Makefile):
#   DEB_PACKAGES  the package names
#   DEB_NEEDS     `command:package` or `/path:package` pairs: what the targets
#                 run or read, and the package that brings it
#   DEPS_APT_SIMULATE  if set, apt-get only simulates the install (-s): with
#                 APT_CONFIG pointing at another status file, shows what apt
#                 would do on another machine
set -euo pipefail

: "${DEB_PACKAGES:?DEB_PACKAGES must list the Debian packages}"
: "${DEB_NEEDS:?DEB_NEEDS must list command:package pairs}"

# dnsmasq, mkfs.* and friends live in sbin, which a user's PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# Prints the needs that are absent, one `thing (package)` per line.
absent_needs() {
	local need thing pkg
	for need in $DEB_NEEDS; do
		thing=${need%%:*}
		pkg=${need#*:}
		if [[ $thing == /* ]]; then
			[[ -e $thing ]] || echo "$thing ($pkg)"
		else
			command -v "$thing" >/dev/null 2>&1 || echo "$thing ($pkg)"
		fi
	done
}

# What apt knows of the set, as lines `installed PKG VERSION|(none)`, `suite PKG
# VERSION SUITE` (each version and the suites serving it) and `source PKG SRC`.
# apt, not dpkg, answers: it honours APT_CONFIG, so the script can be tried
# against another status file (see DEPS_APT_SIMULATE above).
apt_facts() {
	# shellcheck disable=SC2086
	{
		apt-cache policy $DEB_PACKAGES 2>/dev/null | awk '
			/^[^ ]/ { pkg = $1; sub(/:$/, "", pkg); next }
			/^  Installed:/ { print "installed", pkg, $2; next }
			/^        [0-9]+ [a-z]+:\/\// { split($3, s, "/"); print "suite", pkg, v, s[1]; next }
			/^ (\*\*\*|   ) / { v = ($1 == "***") ? $2 : $1; next }'
		apt-cache show --no-all-versions $DEB_PACKAGES 2>/dev/null | awk '
			/^Package:/ { p = $2; print "source", p, p }
			/^Source:/ { print "source", p, $2 }'
	} || true
}

absent_packages() {
	apt_facts | awk -v want="$DEB_PACKAGES" '
		$1 == "installed" { inst[$2] = $3 }
		END { n = split(want, w, " ")
			for (i = 1; i <= n; i++) if (inst[w[i]] == "" || inst[w[i]] == "(none)") print w[i] }'
}

# The set as apt-get arguments. A missing package whose source package is
# already installed from another suite is asked for from that suite
# (`qemu-system-x86/bookworm-backports` beside a backports qemu-utils): the
# bookworm one would break it, and apt never switches suites by itself.
# When no configured suite serves the installed sibling any more (backports
# installed, then its source line removed: seen on a fresh machine), the
# sibling is asked for from the suite the missing package comes from
# (`qemu-utils/bookworm`, a downgrade apt is allowed to make below) instead
# of apt refusing the whole set as "held broken packages".
install_args() {
	apt_facts | awk -v want="$DEB_PACKAGES" '
		$1 == "installed" { inst[$2] = $3 }
		$1 == "suite" { has[$2, $4] = 1; if (!($2 in first)) first[$2] = $4; if (inst[$2] == $3) home[$2] = $4 }
		$1 == "source" { src[$2] = $3 }
		END {
			for (p in home) from[src[p]] = home[p]
			n = split(want, w, " ")
			for (i = 1; i <= n; i++) {
				p = w[i]
				if ((inst[p] == "" || inst[p] == "(none)") && !(src[p] in from) && (p in first)) need[src[p]] = first[p]
			}
			for (i = 1; i <= n; i++) {
				p = w[i]; s = from[src[p]]; missing = (inst[p] == "" || inst[p] == "(none)")
				if (missing && s != "" && ((p, s) in has)) print p "/" s
				else if (!missing && !(p in home) && (src[p] in need) && ((p, need[src[p]]) in has)) print p "/" need[src[p]]
				else print p
			}
		}'
}

missing_pkgs=$(absent_packages | tr '\n' ' ')
missing_needs=$(absent_needs)

if [[ -z $missing_pkgs && -z $missing_needs ]]; then
	echo "make deps: all Debian packages and commands present"
	exit 0
fi

[[ -n $missing_pkgs ]] && echo "make deps: packages not installed: $missing_pkgs"
[[ -n $missing_needs ]] && sed 's/^/make deps: missing: /' <<<"$missing_needs"
if [[ $(id -u) -ne 0 ]]; then
	echo "make deps: run it as root (or: sudo make deps) to install them" >&2
	exit 1
fi

echo "make deps: installing the whole set in one apt transaction"
apt-get update -q
args=$(install_args | tr '\n' ' ')
echo "make deps: apt-get install $args"
# Already-installed packages are no-ops here, but naming them keeps apt from
# removing one of them to satisfy another (see above).
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --allow-downgrades ${DEPS_APT_SIMULATE:+-s} $args

missing_needs=$(absent_needs)
if [[ -n $missing_needs ]]; then
	echo "make deps: still missing after apt-get install:" >&2
	sed 's/^/  /' <<<"$missing_needs" >&2
	exit 1
fi
echo "make deps: all Debian packages and commands present"
