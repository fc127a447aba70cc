// Shared fixture for the guest tests: a Debian root filesystem (debootstrap, cached) in
// MBR/GPT disks as raw, qcow2, vmdk and vpc, built by scripts/make-debian-rootfs.sh.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const REPO = path.resolve(import.meta.dirname, '../..');
const SCRIPT = path.join(REPO, 'scripts/make-debian-rootfs.sh');

/** Returns the names of the missing host tools (empty when all are there). */
export function missingTools(tools: string[]): string[] {
  const PATH = `${process.env.PATH}:/usr/sbin:/sbin`;
  return tools.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`], { env: { ...process.env, PATH } }).status !== 0);
}

export const FIXTURE_TOOLS = ['mke2fs', 'e2fsck', 'debugfs', 'sfdisk', 'qemu-img'];

export interface Fixture {
  dir: string;
  realDistro: boolean;
  partOffset: number;
  partSize: number;
  fsUuid: string;
  cleanup(): void;
}

export function buildFixture(): Fixture {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-guest-'));
  execFileSync('sh', [SCRIPT, 'disk', dir], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
  const env = Object.fromEntries(fs.readFileSync(path.join(dir, 'layout.env'), 'utf8').split('\n').filter(Boolean).map((l) => l.split('=', 2) as [string, string]));
  if (env.REAL_DISTRO !== '1') {
    // Visible in the test output: the real-distro checks are skipped.
    process.stderr.write('NOTE: debootstrap unavailable; using the synthetic rootfs (real-distro checks skipped)\n');
  }
  return {
    dir,
    realDistro: env.REAL_DISTRO === '1',
    partOffset: Number(env.PART_OFFSET),
    partSize: Number(env.PART_SIZE),
    fsUuid: env.FS_UUID!,
    // IMGPORT_KEEP_FIXTURE=1 keeps the folder for a post-mortem.
    cleanup: () => { if (process.env.IMGPORT_KEEP_FIXTURE !== '1') fs.rmSync(dir, { recursive: true, force: true }); },
  };
}

export function copy(fx: Fixture, name: string, to: string): string {
  const dst = path.join(fx.dir, to);
  fs.copyFileSync(path.join(fx.dir, name), dst);
  return dst;
}

/** Converts any image to raw with qemu-img (the independent reader). */
export function toRaw(image: string): string {
  const out = `${image}.check.raw`;
  execFileSync('qemu-img', ['convert', '-O', 'raw', image, out]);
  return out;
}

/** Runs a debugfs request against the partition at `offset` of a raw disk. */
export function debugfs(raw: string, offset: number, request: string): string {
  return execFileSync('debugfs', ['-R', request, `${raw}?offset=${offset}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
}

/** e2fsck -fn on the partition: returns [exit status, output]. */
export function e2fsck(raw: string, offset: number): [number, string] {
  const r = spawnSync('e2fsck', ['-fn', `${raw}?offset=${offset}`], { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
  return [r.status ?? -1, r.stdout + r.stderr];
}

/** Parses `debugfs stat` into mode/uid/gid/size/type. */
export function debugfsStat(raw: string, offset: number, p: string): { type: string; mode: number; uid: number; gid: number; size: number } | null {
  const out = debugfs(raw, offset, `stat ${p}`);
  const t = /Type:\s+(\S+)\s+Mode:\s+(\d+)/.exec(out);
  if (!t) return null;
  const u = /User:\s+(\d+)\s+Group:\s+(\d+).*Size:\s+(\d+)/.exec(out)!;
  return { type: t[1]!, mode: parseInt(t[2]!, 8), uid: Number(u[1]), gid: Number(u[2]), size: Number(u[3]) };
}

/** Runs the CLI: [status, stdout, stderr]. */
export function cli(args: string[]): [number, string, string] {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO, 'src/cli/main.ts'), ...args], { encoding: 'utf8', cwd: REPO });
  return [r.status ?? -1, r.stdout, r.stderr];
}

export function sha256(file: string): string {
  return execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0]!;
}
