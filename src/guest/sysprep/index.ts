// Sysprep: the operation registry, `--ops` selection, and running them against a
// guest image in place (or in memory for --dry-run).
import { InvalidArgument } from '../../engine/errors.js';
import { describePartition, openGuest } from '../guest.js';
import type { ExtFs } from '../fs/ext.js';
import type { GuestFacts, OpContext, SysprepOp, SysprepOptions } from './types.js';
import { parseEnvFile } from './util.js';
import { dhcpClientState, netHwaddr, udevPersistentNet } from './ops/net.js';
import { machineId, sshHostkeys } from './ops/identity.js';
import { bashHistory, logfiles, tmpFiles } from './ops/cleanup.js';
import { cloudInit, disableFirewall, enableSshd } from './ops/services.js';
import { firstboot, hostname, rootPassword, sshInject, writeFiles } from './ops/customize.js';

export type { SysprepOptions } from './types.js';

/** In the order they run: cleaning first, then services, then customisation. */
export const OPERATIONS: SysprepOp[] = [
  udevPersistentNet, netHwaddr, dhcpClientState, machineId, sshHostkeys,
  logfiles, bashHistory, tmpFiles,
  enableSshd, disableFirewall, cloudInit,
  hostname, rootPassword, sshInject, writeFiles, firstboot,
];

export function findOp(name: string): SysprepOp | undefined {
  return OPERATIONS.find((o) => o.name === name);
}

/**
 * Resolves `--ops` (comma list of names, `defaults`, `all`, `-name`) into the operations
 * to run. With no positive entry the defaults are the starting set. Option-driven
 * operations run when their option is given, unless removed with `-name`.
 */
export function selectOps(spec: string | undefined, opts: SysprepOptions): SysprepOp[] {
  const items = (spec ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const positive = items.filter((i) => !i.startsWith('-'));
  const chosen = new Set<string>(positive.length === 0 ? OPERATIONS.filter((o) => o.defaultEnabled && !o.option).map((o) => o.name) : []);
  const removed = new Set<string>();
  for (const item of items) {
    const neg = item.startsWith('-');
    const name = neg ? item.slice(1) : item;
    const names = name === 'defaults' ? OPERATIONS.filter((o) => o.defaultEnabled && !o.option).map((o) => o.name)
      : name === 'all' ? OPERATIONS.filter((o) => !o.option).map((o) => o.name)
        : [name];
    for (const n of names) {
      const op = findOp(n);
      if (!op) throw new InvalidArgument(`--ops: unknown operation '${n}' (see imgport sysprep --list)`);
      if (neg) { chosen.delete(n); removed.add(n); } else {
        if (op.option && !op.requested!(opts)) throw new InvalidArgument(`--ops: operation '${n}' needs ${op.option}`);
        chosen.add(n);
      }
    }
  }
  for (const op of OPERATIONS) if (op.option && op.requested!(opts) && !removed.has(op.name)) chosen.add(op.name);
  return OPERATIONS.filter((o) => chosen.has(o.name));
}

export async function guestFacts(fs: ExtFs): Promise<GuestFacts> {
  const text = (await fs.readText('/etc/os-release')) ?? (await fs.readText('/usr/lib/os-release')) ?? '';
  const env = parseEnvFile(text);
  const id = (env.ID ?? 'linux').toLowerCase();
  const family = new Set([id, ...(env.ID_LIKE ?? '').toLowerCase().split(/\s+/).filter(Boolean)]);
  let systemd = false;
  for (const p of ['/lib/systemd/systemd', '/usr/lib/systemd/systemd']) if ((await fs.stat(p))?.type === 'file') systemd = true;
  return { id, family, systemd };
}

export interface OpResult { op: string; changes: string[]; notes: string[] }

export interface SysprepReport {
  file: string;
  filesystem: string;
  dryRun: boolean;
  operations: OpResult[];
  /** The generated root password, with --root-password random. */
  rootPassword?: string;
  cloudInit?: unknown;
}

export async function runSysprep(file: string, ops: SysprepOp[], opts: SysprepOptions, run: { dryRun?: boolean; format?: string } = {}): Promise<SysprepReport> {
  const guest = await openGuest(file, { writable: true, dryRun: run.dryRun, format: run.format });
  const report: SysprepReport = {
    file, filesystem: `${file} ${describePartition(guest.root.partition)} (${guest.root.ext!.kind})`,
    dryRun: !!run.dryRun, operations: [],
  };
  let failed = true;
  try {
    const facts = await guestFacts(guest.fs);
    const results: Record<string, unknown> = {};
    for (const op of ops) {
      const r: OpResult = { op: op.name, changes: [], notes: [] };
      report.operations.push(r);
      const ctx: OpContext = {
        fs: guest.fs, guest: facts, opts, results,
        changed: (s) => r.changes.push(s),
        note: (s) => r.notes.push(s),
      };
      await op.run(ctx);
    }
    if (typeof results.rootPassword === 'string') report.rootPassword = results.rootPassword;
    if (results.cloudInit) report.cloudInit = results.cloudInit;
    failed = false;
  } finally {
    // Unmount even after a failed operation: libext2fs keeps the metadata it already
    // changed consistent, and an unflushed bitmap would be worse.
    if (failed) await guest.close().catch(() => {});
  }
  await guest.close();
  return report;
}
