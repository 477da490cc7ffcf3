# lazare: one entry point per job. `make demo` is the newcomer's first command,
# `make test` runs the fast tests, `make e2e` the image builds and full
# installs (CI calls both through .ci/run).

SHELL := /bin/bash
CARGO ?= cargo
TARGET := x86_64-unknown-linux-gnu
AGENT := target/$(TARGET)/agent/lazare-agent
CLI := target/release/lazare
export LAZARE_AGENT := $(CURDIR)/$(AGENT)
# build.rs embeds this agent in the CLI (every cargo run below: cli, test,
# lint, deb) instead of building it a second time.
export LAZARE_EMBED_AGENT := $(CURDIR)/$(AGENT)

# Debian 12 packages the builder, the tests and the demo use. xorriso is only
# a test oracle and a benchmark peer, never a build dependency.
DEB_PACKAGES := linux-image-amd64 isolinux syslinux-common grub-efi-amd64-bin \
	grub-efi-amd64-signed shim-signed grub-pc-bin ovmf qemu-system-x86 \
	qemu-utils e2fsprogs mmdebstrap dnsmasq-base xorriso socat iproute2 cpio \
	openssl chromium chromium-driver zstd
# mkfs.fat for the ESP, carried in the initramfs with its libraries.
DEB_PACKAGES += dosfstools
# g++: libFuzzer's C++ (make fuzz), and the crates that build C.
DEB_PACKAGES += g++
# sfdisk: the independent oracle the partition-table tests check against.
DEB_PACKAGES += fdisk
# curl: make demo asks the install server's API what happened.
DEB_PACKAGES += curl
# make bench: the classic pipeline's mkinitramfs, peak RSS via time -v, its
# loopback HTTP listeners in python3.
DEB_PACKAGES += initramfs-tools time python3
# busybox as /bin/sh: the agent's rescue-shell VM test runs commands in it.
DEB_PACKAGES += busybox-static

.PHONY: all deps build agent cli share test lint fmt e2e e2e-more e2e-desktop e2e-room bench bench-room demo images clean gendocs deb fuzz

all: build

# What the targets run or read, each with the package that brings it: `make
# deps` checks them after installing, so a package removed or replaced behind
# apt's back (qemu-utils from backports, see scripts/deps.sh) is named.
DEB_NEEDS := qemu-img:qemu-utils qemu-system-x86_64:qemu-system-x86 \
	mmdebstrap:mmdebstrap dnsmasq:dnsmasq-base socat:socat xorriso:xorriso \
	curl:curl zstd:zstd cpio:cpio ip:iproute2 openssl:openssl \
	chromium:chromium chromedriver:chromium-driver mke2fs:e2fsprogs \
	debugfs:e2fsprogs mkfs.fat:dosfstools fsck.fat:dosfstools sfdisk:fdisk \
	mkinitramfs:initramfs-tools lsinitramfs:initramfs-tools \
	/usr/bin/time:time python3:python3 busybox:busybox-static \
	grub-mkstandalone:grub-efi-amd64-bin \
	/usr/lib/ISOLINUX/isolinux.bin:isolinux \
	/usr/lib/syslinux/modules/bios/ldlinux.c32:syslinux-common \
	/usr/lib/shim/shimx64.efi.signed:shim-signed \
	/usr/share/OVMF/OVMF_CODE.fd:ovmf \
	g++:g++

deps:
	@DEB_PACKAGES="$(DEB_PACKAGES)" DEB_NEEDS="$(DEB_NEEDS)" scripts/deps.sh

# The agent is PID 1 of the CD: static (no program interpreter), size-optimised.
agent:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --profile agent --locked \
		--target $(TARGET) -p lazare-agent
	@# cargo's `strip = true` left the static-pie's symbol table in (7.4 MB
	@# -> 6.0 MB stripped): strip it here, it is copied into every initramfs.
	@# Only a fresh build has a .symtab: stripping again would touch the file
	@# and make build.rs re-embed it, recompiling lazare on every make run.
	if readelf -S $(AGENT) | grep -q '\.symtab'; then strip --strip-all $(AGENT); fi

# The room's sharing engine (issue 15): static like the agent, which
# fetches it from the server at install time; `lazare serve` runs it to seed.
SHARE := target/$(TARGET)/agent/lazare-share
share:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --locked --profile agent \
		--target $(TARGET) -p lazare-share
	if readelf -S $(SHARE) | grep -q '\.symtab'; then strip --strip-all $(SHARE); fi

cli: agent
	$(CARGO) build --release --locked -p lazare

build: agent share cli

# lazare-share is left out here: its release build compiles librqbit once
# more (~5 min cold, for one unit test); its tests are the namespaced
# share_lan and room_bench, and `make lint` checks it.
test: deps build
	$(CARGO) test --workspace --exclude lazare-share --locked --release --no-fail-fast \
		-- --test-threads=2

# `--all-targets` leaves out the tests marked `test = false` (the VM installs
# of make e2e, e2e-more and e2e-desktop): they are named here.
E2E_LINT := -p lazare --test e2e_install --test image_build --test e2e_uefi --test e2e_left_in \
	--test e2e_offline --test e2e_desktop --test e2e_remote --test e2e_room -p lazare-agent --test target_grub \
	-p lazare-share --test share_lan --test room_bench
lint: agent
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy --locked $(E2E_LINT) -- -D warnings

fmt:
	$(CARGO) fmt --all

# The full desktop images (slow: tens of minutes, GBs downloaded; cached in
# ~/.cache/lazare/images). `make test` builds only the small `test` profile.
images: cli
	$(CLI) image build --profile standard --profile light --output target/images

clean:
	$(CARGO) clean

# The newcomer's first command: a server on 127.0.0.1:8470, an ISO for it and a
# qemu PC installed from it, then booted alone (scripts/demo.sh, out/demo/).
demo: deps build
	LAZARE=$(CURDIR)/$(CLI) scripts/demo.sh

# The tests that need the Debian `test` image (built once with mmdebstrap,
# ~12 min, cached in ~/.cache/lazare/images) and the full installs under TCG
# (several minutes each, one VM at a time). Kept out of `make test` by
# `test = false` in Cargo.toml; CI runs both (.ci/run). `make e2e-more` has
# the installs CI's 60 minutes cannot hold as well (a server cut
# mid-download, a CD, then a USB stick, left in an installed PC, an offline
# install with no network then its report, ~9 min, and the whole remote
# reinstall of a running PC): run it before a release.
E2E_TESTS := -p lazare --test image_build --test e2e_install --test e2e_uefi \
	-p lazare-agent --test target_grub
E2E_MORE := install_survives_the_server_going_away_mid_download
e2e: deps build
	$(CARGO) test --locked --release --no-fail-fast $(E2E_TESTS) -- --test-threads=1 \
		--skip $(E2E_MORE)
e2e-more: deps build
	$(CARGO) test --locked --release --no-fail-fast -p lazare --test e2e_install \
		-- --test-threads=1 $(E2E_MORE)
	$(CARGO) test --locked --release --no-fail-fast -p lazare --test e2e_left_in \
		-- --test-threads=1
	$(CARGO) test --locked --release --no-fail-fast -p lazare --test e2e_offline \
		-- --test-threads=1
	@# The whole remote reinstall: an installed PC left on picks up the
	@# admin's order from its timer (orders_every_secs = 60), reinstalls from
	@# its disk's entry and keeps a user's file in /home.
	$(CARGO) test --locked --release --no-fail-fast -p lazare --test e2e_remote \
		-- --test-threads=1

# The two desktops on the PCs they are for (light: 256 MB, Cirrus card;
# standard: 1 GB, plain VGA): install, boot, the shared account's session,
# log-out, the login screen, back in. Builds the light and standard images
# first if ~/.cache/lazare/images lacks them (3 and 12 min); 21 min of TCG
# for both (measured on 2 shared cores; light alone took 26 on a busier day).
# LAZARE_DESKTOP_SCREENS=DIR keeps the screenshots.
e2e-desktop: deps build
	$(CARGO) test --locked --release --no-fail-fast -p lazare --test e2e_desktop \
		-- --test-threads=1 --nocapture

# The room (issue 15) in VMs: three 512 MB PCs on a LAN of network
# namespaces (a bridge, taps, dnsmasq as the room's DHCP server, lazare serve
# with its tracker and the engine's seed) install at once, sharing the image;
# the server's link sends fewer than 1.7 image sizes; each PC then boots its
# own disk. Three TCG VMs at once: ~20 min on 2 shared cores. Then three
# namespaced PCs that cannot reach each other (client isolation) get the
# image from the server alone (share/tests/room_bench.rs, ~2 min), and
# engines on namespaced PCs finish when one PC is switched off mid-way and
# beside a lying peer (share/tests/share_lan.rs).
e2e-room: deps build
	$(CARGO) test --locked --release --no-fail-fast -p lazare --test e2e_room \
		-- --test-threads=1 --nocapture
	$(CARGO) test --locked --release -p lazare-share --test room_bench \
		-- --exact isolated_pcs_install_from_the_server_alone --nocapture
	$(CARGO) test --locked --release -p lazare-share --test share_lan -- --nocapture

# Figures against the peers (mkinitramfs + xorriso, Debian's initrd, curl|tar),
# measured in the same run on this machine's kernel; printed, never asserted.
bench: deps build
	LAZARE=$(CURDIR)/$(CLI) AGENT=$(CURDIR)/$(AGENT) bench/run.sh

# A room of 1, 5, 10 and 40 namespaced PCs running the agent's pipeline,
# with the room's sharing and without (share/tests/room_bench.rs; ~30 min;
# ROOM_SIZES="1 5" for fewer).
bench-room: deps build
	$(CARGO) test --locked --release -p lazare-share --test room_bench -- --exact room_bench --nocapture

# Man page and shell completions, generated from the clap definitions.
gendocs: cli
	mkdir -p target/gendocs
	$(CLI) man > target/gendocs/lazare.1
	$(CLI) completions bash > target/gendocs/lazare.bash
	$(CLI) completions zsh > target/gendocs/_lazare
	$(CLI) completions fish > target/gendocs/lazare.fish

# The Debian package (lazare with its agent embedded, man, completions).
deb: build gendocs
	command -v cargo-deb >/dev/null || $(CARGO) install --locked cargo-deb
	$(CARGO) deb --no-build --output target/debian

# Every cargo-fuzz target (fuzz/fuzz_targets/) for FUZZ_SECS seconds each,
# from the committed seeds (fuzz/seeds/<target>, read only) plus the corpus
# it grows (fuzz/corpus/<target>, not committed). cargo-fuzz needs nightly
# flags: RUSTC_BOOTSTRAP=1 lets this stable toolchain take them. The fuzz
# build embeds no agent (LAZARE_EMBED_AGENT=none). `--release` as the agent on
# the PC is built: without debug assertions or overflow checks. cargo-fuzz's
# default keeps them on, and then dhcproto 0.15's `debug_assert!` on a short
# Client FQDN option panics on a reply any LAN host can send, which the
# release agent drops (agent/src/net/dhcp.rs pins it). A crash stops here,
# its input in fuzz/artifacts/<target>/.
# FUZZ_SANITIZER: `address` (ASan, the default) or `none`. CI uses `none`:
# the cold build then costs 12.5 CPU-minutes instead of 24 (measured, see
# fuzz/README.md); the workspace denies `unsafe`, so what ASan adds is the
# watch over the dependencies' unsafe code and C libraries, which a longer
# `make fuzz` run here keeps.
FUZZ_SECS ?= 60
FUZZ_SANITIZER ?= address
FUZZ_TARGETS := cmdline dns dhcp plan_json inventory_json cpio iso superblock untar chunks
CARGO_FUZZ_VERSION := 0.13.2
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz --version $(CARGO_FUZZ_VERSION)
	RUSTC_BOOTSTRAP=1 LAZARE_EMBED_AGENT=none $(CARGO) fuzz build --release -s $(FUZZ_SANITIZER)
	for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t; \
		echo "make fuzz: $$t for $(FUZZ_SECS) s"; \
		RUSTC_BOOTSTRAP=1 LAZARE_EMBED_AGENT=none $(CARGO) fuzz run --release -s $(FUZZ_SANITIZER) $$t \
			fuzz/corpus/$$t fuzz/seeds/$$t -- -max_total_time=$(FUZZ_SECS) -print_final_stats=1 \
			|| exit 1; \
	done
