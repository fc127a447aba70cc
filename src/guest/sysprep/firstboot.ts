// Things that must happen inside the running guest are queued for its first boot as
// systemd units (the guest is never booted here).
import path from 'node:path/posix';
import type { ExtFs } from '../fs/ext.js';
import { forceSymlink } from './util.js';
import { UnsupportedFeature } from '../../engine/errors.js';

const UNIT_DIR = '/etc/systemd/system';
export const FIRSTBOOT_DIR = '/usr/local/lib/imgport-firstboot';
export const FIRSTBOOT_UNIT = 'imgport-firstboot.service';

/** Writes a unit to /etc/systemd/system and enables it for multi-user.target. */
export async function installUnit(fs: ExtFs, name: string, content: string): Promise<void> {
  const unit = path.join(UNIT_DIR, name);
  await fs.mkdirp(UNIT_DIR);
  await fs.writeFile(unit, content, { mode: 0o644 });
  await forceSymlink(fs, unit, path.join(UNIT_DIR, 'multi-user.target.wants', name));
}

const RUNNER = `#!/bin/sh
# imgport firstboot: runs each queued script once, in name order, then moves it to done/.
d=${FIRSTBOOT_DIR}
mkdir -p "$d/done"
for s in "$d"/scripts/*; do
  [ -f "$s" ] || continue
  echo "=== imgport-firstboot: $s ($(date))"
  sh "$s"
  echo "=== imgport-firstboot: $s exited $?"
  mv "$s" "$d/done/"
done
`;

const UNIT = `[Unit]
Description=imgport first-boot scripts
# Late in boot: after the network and after imgport's own host-key regeneration.
After=network-online.target imgport-ssh-hostkeys.service ssh.service sshd.service
Wants=network-online.target
ConditionDirectoryNotEmpty=${FIRSTBOOT_DIR}/scripts

[Service]
Type=oneshot
ExecStart=${FIRSTBOOT_DIR}/firstboot.sh
StandardOutput=append:/var/log/imgport-firstboot.log
StandardError=inherit
RemainAfterExit=yes
TimeoutSec=0

[Install]
WantedBy=multi-user.target
`;

/** Queues `content` to run once at first boot; returns the guest path of the script. */
export async function addFirstbootScript(fs: ExtFs, systemd: boolean, name: string, content: string): Promise<string> {
  if (!systemd) throw new UnsupportedFeature(`${fs.label}: --firstboot needs a systemd guest (no /lib/systemd/systemd found)`);
  await fs.mkdirp(path.join(FIRSTBOOT_DIR, 'scripts'));
  await fs.writeFile(path.join(FIRSTBOOT_DIR, 'firstboot.sh'), RUNNER, { mode: 0o755 });
  await installUnit(fs, FIRSTBOOT_UNIT, UNIT);
  const existing = await fs.readdir(path.join(FIRSTBOOT_DIR, 'scripts'));
  const seq = String(existing.length + 1).padStart(4, '0');
  const safe = name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64) || 'script';
  const p = path.join(FIRSTBOOT_DIR, 'scripts', `${seq}-${safe}`);
  await fs.writeFile(p, content, { mode: 0o755 });
  return p;
}
