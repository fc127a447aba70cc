// Hygiene: logs, shell history, temporary files.
import path from 'node:path/posix';
import type { ExtFs } from '../../fs/ext.js';
import type { SysprepOp } from '../types.js';
import { homeDirs } from '../util.js';

/** Rotated/compressed logs are removed; live logs are truncated so daemons keep their file. */
const ROTATED = /(\.\d+|\.(gz|xz|bz2|zst|lz4))$|-\d{8}$/;

async function cleanLogs(fs: ExtFs, dir: string, changed: (s: string) => void, depth = 0): Promise<void> {
  if (depth > 16) return;
  for (const e of await fs.readdir(dir)) {
    const p = path.join(dir, e);
    const st = await fs.lstat(p);
    if (!st) continue;
    // systemd-journald keeps one folder per machine-id: stale once machine-id is reset,
    // and a truncated .journal file is just a corrupt one.
    if (dir === '/var/log/journal' && st.type === 'dir' && /^[0-9a-f]{32}$/.test(e)) { await fs.remove(p); changed(`removed ${p}`); continue; }
    if (st.type === 'file' && /\.journal~?$/.test(e)) { await fs.unlink(p); changed(`removed ${p}`); continue; }
    if (st.type === 'dir') await cleanLogs(fs, p, changed, depth + 1);
    // Never follow symlinks: a link in /var/log may point anywhere in the guest.
    else if (st.type === 'file' && ROTATED.test(e)) { await fs.unlink(p); changed(`removed ${p}`); }
    else if (st.type === 'file' && st.size > 0) { await fs.truncate(p); changed(`truncated ${p}`); }
  }
}

export const logfiles: SysprepOp = {
  name: 'logfiles',
  description: 'Truncate log files under /var/log (directories and file ownership kept; rotated logs removed)',
  defaultEnabled: true,
  async run({ fs, changed }) {
    if ((await fs.lstat('/var/log'))?.type === 'dir') await cleanLogs(fs, '/var/log', changed);
  },
};

export const bashHistory: SysprepOp = {
  name: 'bash-history',
  description: 'Remove shell history (/root/.bash_history, /home/*/.bash_history, .zsh_history)',
  defaultEnabled: true,
  async run({ fs, changed }) {
    for (const h of await homeDirs(fs)) {
      for (const f of ['.bash_history', '.zsh_history']) {
        const p = path.join(h, f);
        const st = await fs.lstat(p);
        if (st && st.type !== 'dir') { await fs.unlink(p); changed(`removed ${p}`); }
      }
    }
  },
};

export const tmpFiles: SysprepOp = {
  name: 'tmp-files',
  description: 'Remove everything in /tmp and /var/tmp (the directories stay)',
  defaultEnabled: true,
  async run({ fs, changed }) {
    for (const dir of ['/tmp', '/var/tmp']) {
      if ((await fs.lstat(dir))?.type !== 'dir') continue;
      for (const e of await fs.readdir(dir)) {
        const p = path.join(dir, e);
        await fs.remove(p);
        changed(`removed ${p}`);
      }
    }
  },
};
