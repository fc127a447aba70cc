#!/bin/sh
# Test fixture builder for the guest-preparation tests (test/guest/).
#
#   scripts/make-debian-rootfs.sh rootfs            -> prints the cached rootfs directory
#   scripts/make-debian-rootfs.sh disk OUTDIR       -> builds OUTDIR/{part.ext4,mbr.raw,gpt.raw,
#                                                      gpt.qcow2,mbr.vmdk,gpt.vpc,layout.env}
#
# The Debian root filesystem comes from `debootstrap --variant=minbase` into a cache
# directory ($IMGPORT_TEST_CACHE, default /var/tmp/imgport-rootfs) so only the first run
# downloads anything. When debootstrap cannot reach a mirror (or is missing), a small
# synthetic rootfs is written instead and layout.env says REAL_DISTRO=0, so the tests
# can skip — visibly — the checks that need a real distribution.
#
# Needs: debootstrap (optional), e2fsprogs (mke2fs), fdisk (sfdisk), qemu-utils (qemu-img),
# openssh-client (ssh-keygen, optional: fake key files otherwise).
set -eu

CACHE=${IMGPORT_TEST_CACHE:-/var/tmp/imgport-rootfs}
SUITE=${IMGPORT_TEST_SUITE:-bookworm}
ROOTFS=$CACHE/debian-$SUITE
SYNTH=$CACHE/synthetic
PATH=$PATH:/usr/sbin:/sbin

# The mirror the host already uses (only Debian's servers are reachable from CI).
mirror() {
  m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$m" ] || m=$(grep -hs '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

build_real() {
  # IMGPORT_TEST_NO_DEBOOTSTRAP=1 exercises the synthetic fallback on purpose.
  [ "${IMGPORT_TEST_NO_DEBOOTSTRAP:-0}" = 1 ] && return 1
  [ -f "$ROOTFS/.complete" ] && return 0
  command -v debootstrap >/dev/null 2>&1 || return 1
  mkdir -p "$CACHE"
  rm -rf "$ROOTFS.tmp"
  # A kernel + initramfs-tools gives inspect-guest real /boot contents and an initrd to
  # list; systemd + openssh-server give real unit files for enable-sshd / ssh-hostkeys.
  if ! debootstrap --variant=minbase \
      --include=systemd-sysv,openssh-server,linux-image-amd64,initramfs-tools,zstd,ifupdown,isc-dhcp-client \
      "$SUITE" "$ROOTFS.tmp" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1; then
    echo "debootstrap failed, see $CACHE/debootstrap.log" >&2
    rm -rf "$ROOTFS.tmp"
    return 1
  fi
  mv "$ROOTFS.tmp" "$ROOTFS"
  touch "$ROOTFS/.complete"
}

build_synthetic() {
  [ -f "$SYNTH/.complete" ] && return 0
  rm -rf "$SYNTH"
  mkdir -p "$SYNTH/etc" "$SYNTH/bin" "$SYNTH/boot" "$SYNTH/usr/bin" "$SYNTH/lib/systemd/system"
  cat >"$SYNTH/etc/os-release" <<'EOF'
PRETTY_NAME="Synthetic Debian-like test rootfs"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
ID=debian
EOF
  echo "root:x:0:0:root:/root:/bin/sh" >"$SYNTH/etc/passwd"
  echo "root:*:19000:0:99999:7:::" >"$SYNTH/etc/shadow"
  chmod 640 "$SYNTH/etc/shadow"
  echo "127.0.0.1 localhost" >"$SYNTH/etc/hosts"
  # An ELF header for the architecture probe: the host's own shell binary.
  cp /bin/sh "$SYNTH/bin/sh"
  # Markers the operations look for (systemd present, ssh-keygen installed); not runnable.
  mkdir -p "$SYNTH/lib/systemd" "$SYNTH/var/log" "$SYNTH/var/lib/dpkg"
  printf '#!/bin/sh\nexit 1\n' >"$SYNTH/lib/systemd/systemd"; chmod 755 "$SYNTH/lib/systemd/systemd"
  printf '#!/bin/sh\nexit 1\n' >"$SYNTH/usr/bin/ssh-keygen"; chmod 755 "$SYNTH/usr/bin/ssh-keygen"
  : >"$SYNTH/var/lib/dpkg/status"
  echo "fake boot log" >"$SYNTH/var/log/dpkg.log"
  printf '[Unit]\nDescription=OpenBSD Secure Shell server\n[Service]\nExecStart=/usr/sbin/sshd -D\n[Install]\nWantedBy=multi-user.target\n' \
    >"$SYNTH/lib/systemd/system/ssh.service"
  touch "$SYNTH/.complete"
}

rootfs() {
  if build_real; then echo "$ROOTFS"; return 0; fi
  build_synthetic
  echo "$SYNTH"
}

# Files the sysprep operations are supposed to clean or change.
add_test_files() {
  r=$1
  mkdir -p "$r/etc/udev/rules.d" "$r/etc/sysconfig/network-scripts" "$r/etc/ssh" \
    "$r/var/log/apt" "$r/root" "$r/home/alice" "$r/var/lib/dhcp" "$r/var/lib/dhclient" \
    "$r/var/lib/NetworkManager" "$r/tmp/junkdir" "$r/var/tmp" "$r/etc/ufw" "$r/etc/cloud/cloud.cfg.d" \
    "$r/etc/systemd/system/multi-user.target.wants" "$r/var/lib/dbus"
  printf 'SUBSYSTEM=="net", ACTION=="add", ATTR{address}=="52:54:00:12:34:56", NAME="eth0"\n' \
    >"$r/etc/udev/rules.d/70-persistent-net.rules"
  printf '# generator\nACTION=="add", SUBSYSTEM=="net", IMPORT{program}="write_net_rules"\n' \
    >"$r/etc/udev/rules.d/75-persistent-net-generator.rules"
  printf 'DEVICE=eth0\nHWADDR=52:54:00:12:34:56\nUUID=5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03\nBOOTPROTO=dhcp\nONBOOT=yes\n' \
    >"$r/etc/sysconfig/network-scripts/ifcfg-eth0"
  echo 0123456789abcdef0123456789abcdef >"$r/etc/machine-id"
  chmod 444 "$r/etc/machine-id"
  rm -f "$r"/etc/ssh/ssh_host_*
  if command -v ssh-keygen >/dev/null 2>&1; then
    ssh-keygen -q -t ed25519 -N '' -C test -f "$r/etc/ssh/ssh_host_ed25519_key"
    ssh-keygen -q -t ecdsa -N '' -C test -f "$r/etc/ssh/ssh_host_ecdsa_key"
  else
    echo "fake private key" >"$r/etc/ssh/ssh_host_ed25519_key"; chmod 600 "$r/etc/ssh/ssh_host_ed25519_key"
    echo "ssh-ed25519 AAAAfake test" >"$r/etc/ssh/ssh_host_ed25519_key.pub"
  fi
  echo "Nov 23 10:00:00 host sshd[1]: Accepted password for root from 10.0.0.9" >"$r/var/log/auth.log"
  echo "Start-Date: 2026-11-23  10:00:00" >"$r/var/log/apt/history.log"
  echo "secret-command --password hunter2" >"$r/root/.bash_history"
  echo "ls -la" >"$r/home/alice/.bash_history"
  chown -R 1000:1000 "$r/home/alice"
  echo 'lease { interface "eth0"; fixed-address 10.0.0.5; }' >"$r/var/lib/dhcp/dhclient.eth0.leases"
  echo 'lease { fixed-address 10.0.0.6; }' >"$r/var/lib/dhclient/dhclient--eth0.lease"
  echo 'ADDRESS=10.0.0.7' >"$r/var/lib/NetworkManager/internal-1234-eth0.lease"
  chmod 1777 "$r/tmp" "$r/var/tmp"
  echo junk >"$r/tmp/junkfile"; echo junk >"$r/tmp/junkdir/inner"; echo junk >"$r/var/tmp/junk2"
  printf 'ENABLED=yes\nLOGLEVEL=low\n' >"$r/etc/ufw/ufw.conf"
  ln -sf /lib/systemd/system/ufw.service "$r/etc/systemd/system/multi-user.target.wants/ufw.service"
  # sshd disabled, so enable-sshd has something to do.
  rm -f "$r/etc/systemd/system/multi-user.target.wants/ssh.service" "$r/etc/systemd/system/sshd.service"
  printf 'datasource_list: [ NoCloud, ConfigDrive, OpenStack, None ]\n' >"$r/etc/cloud/cloud.cfg.d/90_dpkg.cfg"
  printf 'users:\n  - default\ncloud_init_modules:\n  - growpart\n' >"$r/etc/cloud/cloud.cfg"
  # A stand-in for the cloud-init program (the real package is not in minbase).
  mkdir -p "$r/usr/bin"; printf '#!/bin/sh\necho "cloud-init stub"\n' >"$r/usr/bin/cloud-init"; chmod 755 "$r/usr/bin/cloud-init"
  # A journald folder named after the old machine-id.
  mkdir -p "$r/var/log/journal/0123456789abcdef0123456789abcdef"
  echo "LPKSHHRH fake journal" >"$r/var/log/journal/0123456789abcdef0123456789abcdef/system.journal"
  printf 'UUID=%s / ext4 errors=remount-ro 0 1\n/dev/vdb1 /data xfs defaults,nofail 0 2\n' "$FS_UUID" >"$r/etc/fstab"
  echo oldhost >"$r/etc/hostname"
  # A symlink in /var/log pointing at a file outside it: cleaning must not follow it.
  ln -sf /etc/hostname "$r/var/log/evil-link"
}

disk() {
  out=$1
  mkdir -p "$out"
  src=$(rootfs)
  real=1; [ "$src" = "$SYNTH" ] && real=0
  stage=$out/stage
  rm -rf "$stage"; mkdir -p "$stage"
  # Kernel modules, docs and locales are not needed in the image (the initrd carries
  # what is needed to mount root); leaving them out keeps the test image small.
  (cd "$src" && tar --exclude=./lib/modules --exclude=./usr/lib/modules --exclude=./usr/share/doc \
      --exclude=./usr/share/man --exclude=./usr/share/locale --exclude=./var/cache/apt/archives/*.deb \
      --exclude=./.complete -cf - .) | (cd "$stage" && tar -xf -)
  FS_UUID=$(cat /proc/sys/kernel/random/uuid)
  add_test_files "$stage"
  used=$(du -sm "$stage" | awk '{print $1}')
  size_mb=$(( used * 3 / 2 + 64 ))
  rm -f "$out/part.ext4"
  # 4 KiB blocks like cloud images (mke2fs would pick 1 KiB for a "small" filesystem).
  mke2fs -q -F -t ext4 -b 4096 -U "$FS_UUID" -L imgport-root -d "$stage" "$out/part.ext4" "${size_mb}M"
  rm -rf "$stage"
  part_sectors=$(( size_mb * 2048 ))
  start=2048
  disk_mb=$(( size_mb + 2 ))
  for t in mbr gpt; do
    rm -f "$out/$t.raw"
    truncate -s "${disk_mb}M" "$out/$t.raw"
    if [ $t = mbr ]; then
      printf 'label: dos\n%s,%s,83,*\n' $start $part_sectors | sfdisk -q "$out/$t.raw"
    else
      printf 'label: gpt\n%s,%s,0FC63DAF-8483-4772-8E79-3D69C8E47DE4\n' $start $part_sectors | sfdisk -q "$out/$t.raw"
    fi
    dd if="$out/part.ext4" of="$out/$t.raw" bs=1M seek=1 conv=notrunc,sparse status=none
  done
  qemu-img convert -O qcow2 "$out/gpt.raw" "$out/gpt.qcow2"
  qemu-img convert -O vmdk "$out/mbr.raw" "$out/mbr.vmdk"
  qemu-img convert -O vpc -o subformat=fixed "$out/gpt.raw" "$out/gpt.vpc"
  cat >"$out/layout.env" <<EOF
REAL_DISTRO=$real
ROOTFS=$src
PART_OFFSET=$(( start * 512 ))
PART_SIZE=$(( part_sectors * 512 ))
FS_UUID=$FS_UUID
EOF
}

case "${1:-}" in
  rootfs) rootfs ;;
  disk) [ $# -eq 2 ] || { echo "usage: $0 disk OUTDIR" >&2; exit 2; }; disk "$2" ;;
  *) echo "usage: $0 rootfs | disk OUTDIR" >&2; exit 2 ;;
esac
