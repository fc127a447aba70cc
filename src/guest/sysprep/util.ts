// Guest file helpers shared by the operations.
import path from 'node:path/posix';
import type { ExtFs } from '../fs/ext.js';
import { InvalidArgument } from '../../engine/errors.js';

/** Entries of `dir` whose names match `re` (empty when the directory is missing). */
export async function listMatching(fs: ExtFs, dir: string, re: RegExp): Promise<string[]> {
  if (!(await fs.isDir(dir))) return [];
  return (await fs.readdir(dir)).filter((e) => re.test(e)).map((e) => path.join(dir, e));
}

/** Home directories: /root and /home/* (directories only). */
export async function homeDirs(fs: ExtFs): Promise<string[]> {
  const out: string[] = [];
  if ((await fs.lstat('/root'))?.type === 'dir') out.push('/root');
  for (const h of await listMatching(fs, '/home', /.*/)) if ((await fs.lstat(h))?.type === 'dir') out.push(h);
  return out;
}

export interface PasswdEntry { name: string; uid: number; gid: number; home: string; shell: string }

export async function readPasswd(fs: ExtFs): Promise<PasswdEntry[]> {
  const text = (await fs.readText('/etc/passwd')) ?? '';
  return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':')).filter((f) => f.length >= 7)
    .map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]!, shell: f[6]! }));
}

/** Parses KEY=value lines (os-release, ufw.conf), unquoting values. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    let v = m[2]!;
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
    out[m[1]!] = v;
  }
  return out;
}

/** Where the guest's packaged systemd units live (first that exists). */
export async function findUnit(fs: ExtFs, unit: string): Promise<string | null> {
  for (const dir of ['/usr/lib/systemd/system', '/lib/systemd/system']) {
    const p = path.join(dir, unit);
    if ((await fs.stat(p))?.type === 'file') return p;
  }
  return null;
}

/** Absolute guest path check for user-given paths. */
export function guestPath(p: string, what: string): string {
  if (!p.startsWith('/')) throw new InvalidArgument(`${what}: guest path must be absolute: ${p}`);
  const n = path.normalize(p);
  if (n === '/') throw new InvalidArgument(`${what}: cannot use / as a file`);
  return n;
}

/** Creates or replaces a symlink. */
export async function forceSymlink(fs: ExtFs, target: string, link: string): Promise<void> {
  const st = await fs.lstat(link);
  if (st?.type === 'symlink') {
    if (await fs.readlink(link) === target) return;
    await fs.unlink(link);
  } else if (st) {
    throw new InvalidArgument(`${fs.label}: ${link} exists and is not a symlink`);
  }
  await fs.mkdirp(path.dirname(link));
  await fs.symlink(target, link);
}
