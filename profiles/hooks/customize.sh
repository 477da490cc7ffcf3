#!/bin/sh
# mmdebstrap --customize-hook for every lazare image. $1 is the image root.
# `lazare image build` passes the profile's settings in the environment:
#   LAZARE_LOCALE    default locale, e.g. fr_FR.UTF-8
#   LAZARE_KEYMAP    XKB layout[-variant], e.g. fr or ch-fr
#   LAZARE_TIMEZONE  e.g. Europe/Paris
#   LAZARE_NETWORK   networkmanager | networkd
#   LAZARE_DISABLE   units to disable, space separated
# The agent overrides locale/keymap/timezone from the plan at install time;
# these are the defaults of a PC installed without a plan value.
set -eu
root="$1"
: "${LAZARE_LOCALE:=fr_FR.UTF-8}" "${LAZARE_KEYMAP:=fr}" "${LAZARE_TIMEZONE:=Europe/Paris}"
: "${LAZARE_NETWORK:=networkmanager}" "${LAZARE_DISABLE:=}"

# Locales: the profile's and English, generated now so a first boot is fast.
charset="${LAZARE_LOCALE#*.}"
[ "$charset" = "$LAZARE_LOCALE" ] && charset=UTF-8
for l in "$LAZARE_LOCALE $charset" "en_US.UTF-8 UTF-8"; do
    grep -qx "$l" "$root/etc/locale.gen" 2>/dev/null || echo "$l" >> "$root/etc/locale.gen"
done
chroot "$root" locale-gen
echo "LANG=$LAZARE_LOCALE" > "$root/etc/default/locale"

# Keyboard (console-setup reads the same file for the text console).
layout="${LAZARE_KEYMAP%%-*}"
variant=""
[ "$layout" != "$LAZARE_KEYMAP" ] && variant="${LAZARE_KEYMAP#*-}"
cat > "$root/etc/default/keyboard" <<KBD
XKBMODEL="pc105"
XKBLAYOUT="$layout"
XKBVARIANT="$variant"
XKBOPTIONS=""
BACKSPACE="guess"
KBD

# Timezone.
[ -e "$root/usr/share/zoneinfo/$LAZARE_TIMEZONE" ] || { echo "unknown timezone $LAZARE_TIMEZONE" >&2; exit 1; }
ln -sfn "/usr/share/zoneinfo/$LAZARE_TIMEZONE" "$root/etc/localtime"
echo "$LAZARE_TIMEZONE" > "$root/etc/timezone"

# GRUB defaults: serial and screen console, and GRUB_DEFAULT=saved so that
# `grub-reboot lazare-reinstall` works. The *-bin GRUB packages ship no
# /etc/default/grub: this is the whole file.
cat > "$root/etc/default/grub" <<'GRUB'
# Written by lazare. `update-grub` reads this file.
GRUB_DEFAULT=saved
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB

# A login prompt on the first serial port, whatever the kernel command line.
mkdir -p "$root/etc/systemd/system/getty.target.wants"
ln -sfn /lib/systemd/system/serial-getty@.service \
    "$root/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"

# Network.
case "$LAZARE_NETWORK" in
networkd)
    mkdir -p "$root/etc/systemd/network"
    cat > "$root/etc/systemd/network/80-lazare-dhcp.network" <<'NET'
# Written by lazare: DHCP on every wired NIC.
[Match]
Name=en* eth*

[Network]
DHCP=yes
NET
    chroot "$root" systemctl enable systemd-networkd.service
    ;;
networkmanager)
    chroot "$root" systemctl is-enabled NetworkManager.service >/dev/null \
        || chroot "$root" systemctl enable NetworkManager.service
    ;;
*) echo "unknown network kind $LAZARE_NETWORK" >&2; exit 1 ;;
esac

for unit in $LAZARE_DISABLE; do
    chroot "$root" systemctl disable "$unit" 2>/dev/null || true
    chroot "$root" systemctl mask "$unit"
done

# Nothing machine-specific: the agent writes these at install time.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root/etc/hostname" "$root/etc/resolv.conf"
rm -f "$root"/etc/ssh/ssh_host_*
printf '# /etc/fstab: written by the lazare agent at install time (by UUID).\n' > "$root/etc/fstab"
