#!/usr/bin/env bash
# Regenerates the committed seed corpora (fuzz/seeds/<target>/): small valid
# inputs of each format, made with the real tools where there are some
# (mke2fs, mkfs.fat, sfdisk, cpio, xorriso), so the fuzzers start from the
# shapes the parsers meet in practice. Run from anywhere; needs root for
# nothing.
set -euo pipefail
S=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

mkdir -p "$S"/{cmdline,dns,dhcp,plan_json,inventory_json,cpio,iso,superblock,untar,chunks}

printf 'BOOT_IMAGE=/boot/vmlinuz quiet lazare.server=http://10.0.2.2:8470 ip=dhcp\n' >"$S/cmdline/server"
printf 'ip=10.0.0.5::10.0.0.1:255.255.255.0:pc1:eth0:none:10.0.0.1 lazare.key=ed25519:AAAA "a b"=c\n' >"$S/cmdline/static-ip"

python3 - "$S" <<'PY'
import json, struct, sys, hashlib, tarfile, io, os
S = sys.argv[1]
def w(target, name, data):
    with open(os.path.join(S, target, name), "wb") as f:
        f.write(data)

# DNS: an answer to "install.lan" A with a compressed name and two A records.
q = struct.pack(">HHHHHH", 0x1234, 0x8180, 1, 2, 0, 0)
q += b"\x07install\x03lan\x00" + struct.pack(">HH", 1, 1)
for ip in ([10, 0, 2, 2], [192, 168, 1, 9]):
    q += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 300, 4) + bytes(ip)
w("dns", "answer", q)
w("dns", "cname-then-a", struct.pack(">HHHHHH", 7, 0x8180, 1, 2, 0, 0)
  + b"\x03www\x00" + struct.pack(">HH", 1, 1)
  + b"\xc0\x0c" + struct.pack(">HHIH", 5, 1, 60, 6) + b"\x03srv\x00\x00"
  + b"\x03srv\x00" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([10, 1, 2, 3]))

# DHCP: an ACK with mask, router, DNS, server id, lease time, TFTP name.
def dhcp(kind):
    m = struct.pack(">BBBBIHH", 2, 1, 6, 0, 0xdeadbeef, 0, 0)
    m += bytes([0] * 4) + bytes([10, 0, 2, 15]) + bytes([10, 0, 2, 2]) + bytes([0] * 4)
    m += bytes([0x52, 0x54, 0, 0x12, 0x34, 0x56]) + bytes(10) + bytes(64) + bytes(128)
    m += bytes([99, 130, 83, 99])
    m += bytes([53, 1, kind, 1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 2, 2, 6, 8, 10, 0, 2, 3, 8, 8, 8, 8])
    m += bytes([54, 4, 10, 0, 2, 2, 51, 4, 0, 0, 14, 16, 66, 9]) + b"10.0.2.2\x00" + bytes([255])
    return m
w("dhcp", "ack", dhcp(5))
w("dhcp", "offer", dhcp(2))

plan = {"machine_id": "a" * 64, "hostname": "pc-001", "action": "install",
        "image": {"name": "test", "url": "/images/test.tar.zst", "sha256": "b" * 64,
                  "size": 123456, "format": "tar.zst", "chunks": "c" * 64},
        "disks": {"root_min": 3221225472, "home": "preserve", "swap": {"kind": "fixed", "bytes": 5},
                  "table": "auto", "exclude": ["sdb"]},
        "locale": "fr_FR.UTF-8", "keymap": "fr", "timezone": "Europe/Paris",
        "users": [{"name": "marie", "full_name": "Marie", "password_hash": "$6$x$y", "admin": True}],
        "reinstall_entry": True, "countdown_secs": 10, "nonce": "00" * 16}
w("plan_json", "install", json.dumps(plan).encode())
plan2 = dict(plan, action="wait", users=[])
w("plan_json", "wait", json.dumps(plan2).encode())

disk = lambda name, size, parts, table: {"name": name, "size_bytes": size, "model": "ST340014A",
    "serial": "5JX00001", "removable": False, "rotational": True, "sector_size": 512,
    "partitions": parts, "table": table}
part = lambda n, start, size, fs, label: {"number": n, "start": start, "size": size, "fs_type": fs,
    "label": label, "uuid": None, "looks_like_home": label == "home"}
MIB = 1 << 20
inv = {"machine_id": "a" * 64, "memory_bytes": 256 * MIB, "cpus": 1, "cpu_model": "Pentium 4",
       "firmware": "bios", "dmi": {}, "disks": [
           disk("sda", 40_000_000_000, [part(1, MIB, 10 * 1024 * MIB, "ext4", "root"),
                                        part(2, 11 * 1024 * MIB, 20 * 1024 * MIB, "ext4", "home")], "mbr"),
           disk("sdb", 8_000_000_000, [], None)],
       "nics": [{"name": "eth0", "mac": "52:54:00:12:34:56", "driver": "e100", "carrier": True}],
       "boot_device": "sr0", "agent_version": "0.1.0"}
w("inventory_json", "bios-kept-home", json.dumps(inv).encode())
w("inventory_json", "with-policy", json.dumps({"inventory": dict(inv, firmware="uefi"),
  "policy": {"root_min": 1 << 30, "home": "fresh", "swap": {"kind": "none"}, "table": "gpt"}}).encode())

# Chunk indexes: 3 chunks of 4 KiB (the last short), and an empty file.
def index(size, cs):
    n = (size + cs - 1) // cs
    return b"LZCHUNK1" + struct.pack("<IQ", cs, size) + b"".join(hashlib.sha256(bytes([i])).digest() for i in range(n))
w("chunks", "three", index(2 * 4096 + 100, 4096))
w("chunks", "empty", index(0, 1 << 20))

# Tars: every entry type, and the escapes the unpack must refuse.
def tar(entries):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, kind, extra in entries:
            i = tarfile.TarInfo(name)
            i.type = kind
            data = b""
            if kind == tarfile.REGTYPE:
                data = extra or b"hello\n"
                i.size = len(data)
                i.mode = 0o4755
            elif kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                i.linkname = extra
            elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                i.devmajor, i.devminor = extra
            t.addfile(i, io.BytesIO(data) if data else None)
    return b.getvalue()
w("untar", "every-type", tar([("etc", tarfile.DIRTYPE, None), ("etc/hostname", tarfile.REGTYPE, b"pc\n"),
    ("bin", tarfile.SYMTYPE, "usr/bin"), ("etc/h2", tarfile.LNKTYPE, "etc/hostname"),
    ("dev/null", tarfile.CHRTYPE, (1, 3)), ("dev/sda", tarfile.BLKTYPE, (8, 0)),
    ("run/fifo", tarfile.FIFOTYPE, None)]))
w("untar", "symlink-escape", tar([("e", tarfile.SYMTYPE, "/"), ("e/dev/sda", tarfile.BLKTYPE, (8, 0)),
    ("e/tmp/x", tarfile.REGTYPE, b"x"), ("l", tarfile.SYMTYPE, "../outside"), ("l/y", tarfile.REGTYPE, b"y")]))
w("untar", "dotdot", tar([("a/../../outside/x", tarfile.REGTYPE, b"x"), ("h", tarfile.LNKTYPE, "../outside/z")]))
PY

# Superblocks and tables, as mkfs and sfdisk write them (first 36 KiB).
truncate -s 8M "$T/ext4" && mke2fs -q -F -t ext4 -L home "$T/ext4" && head -c 36864 "$T/ext4" >"$S/superblock/ext4"
truncate -s 8M "$T/ext2" && mke2fs -q -F -t ext2 "$T/ext2" && head -c 36864 "$T/ext2" >"$S/superblock/ext2"
truncate -s 40M "$T/fat" && mkfs.fat -F 32 -n EFI "$T/fat" >/dev/null && head -c 4096 "$T/fat" >"$S/superblock/vfat32"
truncate -s 64M "$T/mbr" && printf 'label: dos\nsize=32MiB, type=83\ntype=82\n' | sfdisk -q "$T/mbr" && head -c 8192 "$T/mbr" >"$S/superblock/mbr"
truncate -s 64M "$T/gpt" && printf 'label: gpt\nsize=32MiB\n\n' | sfdisk -q "$T/gpt" && head -c 8192 "$T/gpt" >"$S/superblock/gpt"
python3 -c 'import sys; b=bytearray(8192); b[4086:4096]=b"SWAPSPACE2"; b[1052:1056]=b"swp\0"; sys.stdout.buffer.write(bytes(b))' >"$S/superblock/swap"

# An initramfs: a gzip'd newc cpio, then a plain one appended (as early
# microcode + main archive are).
mkdir -p "$T/root/etc/lazare" "$T/root/bin"
echo 'ed25519:AAAA' >"$T/root/etc/lazare/server.pub"
echo '#!/bin/sh' >"$T/root/init"
ln -s init "$T/root/bin/sh"
(cd "$T/root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -9n) >"$S/cpio/gzip-newc"
(cd "$T/root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$S/cpio/plain-newc"

# A small ISO with an isolinux config, a grub config and that initramfs.
mkdir -p "$T/iso/isolinux" "$T/iso/boot/grub"
printf 'default lazare\nlabel lazare\n  kernel /boot/vmlinuz\n  append initrd=/boot/initrd.gz quiet\n' >"$T/iso/isolinux/isolinux.cfg"
printf 'menuentry "lazare" {\n  linux /boot/vmlinuz quiet\n  initrd /boot/initrd.gz\n}\n' >"$T/iso/boot/grub/grub.cfg"
cp "$S/cpio/gzip-newc" "$T/iso/boot/initrd.gz"
xorriso -as mkisofs -quiet -V LAZARE -o "$T/small.iso" "$T/iso" 2>/dev/null
cp "$T/small.iso" "$S/iso/small"
