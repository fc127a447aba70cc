// Machine identity: machine-id and SSH host keys.
import type { SysprepOp } from '../types.js';
import { findUnit, listMatching } from '../util.js';
import { installUnit } from '../firstboot.js';

export const machineId: SysprepOp = {
  name: 'machine-id',
  description: 'Empty /etc/machine-id (kept as a zero-length file, so systemd makes a new one at boot)',
  defaultEnabled: true,
  async run({ fs, changed }) {
    for (const p of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
      const st = await fs.lstat(p);
      // Debian links the dbus one to /etc/machine-id: leave links alone.
      if (st?.type === 'file' && st.size > 0) { await fs.truncate(p); changed(`emptied ${p}`); }
    }
  },
};

const KEYGEN_UNIT = 'imgport-ssh-hostkeys.service';

export const sshHostkeys: SysprepOp = {
  name: 'ssh-hostkeys',
  description: 'Remove SSH host keys /etc/ssh/ssh_host_* (regenerated at boot: sshd-keygen on RHEL, an ssh-keygen -A unit elsewhere)',
  defaultEnabled: true,
  async run({ fs, guest, changed, note }) {
    const keys = await listMatching(fs, '/etc/ssh', /^ssh_host_/);
    for (const p of keys) { await fs.remove(p); changed(`removed ${p}`); }
    if (keys.length === 0) return;
    // RHEL/Fedora regenerate missing keys with sshd-keygen before sshd starts.
    if (await findUnit(fs, 'sshd-keygen@.service') || await findUnit(fs, 'sshd-keygen.service')) {
      note('sshd-keygen regenerates the host keys at boot');
      return;
    }
    if (!guest.systemd) {
      note('guest has no systemd: host keys are NOT regenerated automatically (run ssh-keygen -A at first boot)');
      return;
    }
    const keygen = (await fs.isFile('/usr/bin/ssh-keygen')) ? '/usr/bin/ssh-keygen' : null;
    if (!keygen) { note('ssh-keygen is not installed in the guest; no regeneration unit installed'); return; }
    // Debian/Ubuntu have no boot-time generator (their postinst or cloud-init does it);
    // this unit runs before sshd only while a key is missing, so effectively once.
    await installUnit(fs, KEYGEN_UNIT, [
      '[Unit]',
      'Description=Regenerate SSH host keys removed by imgport sysprep',
      'Before=ssh.service sshd.service',
      'ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key',
      '',
      '[Service]',
      'Type=oneshot',
      `ExecStart=${keygen} -A`,
      'RemainAfterExit=yes',
      '',
      '[Install]',
      'WantedBy=multi-user.target',
      '',
    ].join('\n'));
    changed(`installed ${KEYGEN_UNIT} (runs ssh-keygen -A at first boot)`);
  },
};
