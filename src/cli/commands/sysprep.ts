import fs from 'node:fs';
import path from 'node:path';
import type { Command } from '../main.js';
import { parseArgs, outputMode, needPositional, printJson, str } from '../args.js';
import { EXIT } from '../exit.js';
import { InvalidArgument, ioError } from '../../engine/errors.js';
import { OPERATIONS, runSysprep, selectOps, type SysprepOptions } from '../../guest/sysprep/index.js';

const USAGE = 'imgport sysprep [--list] [--ops a,b,-c] [--dry-run] [--hostname NAME] [--root-password password:PASS|random] [--ssh-inject USER:string:KEY] [--write PATH:CONTENT] [--firstboot SCRIPT] [-f FMT] [--output human|json] FILE';

const HELP = `usage: ${USAGE}

Prepares a Linux guest image for cloning/cloud use without booting it: edits its ext2/3/4
root filesystem in place, inside any image format (qcow2, vmdk, vpc, raw ...).

  --list                 list the operations; * marks the ones run by default
  --ops LIST             comma list: names, 'defaults', 'all', '-name' to remove one
                         (only removals: start from the defaults)
  --dry-run              run everything in memory and report; the image is not written
  --hostname NAME        set the host name
  --root-password SEL    password:PASS or random (the random one is printed)
  --ssh-inject U:string:KEY   append KEY to user U's ~/.ssh/authorized_keys (repeatable)
  --write PATH:CONTENT   write a guest file (repeatable)
  --firstboot SCRIPT     run the host file SCRIPT once at the guest's first boot (repeatable)
  -f FMT                 image format (probed when absent)
  --output json          machine-readable report
`;

function splitOnce(v: string, sep: string, what: string): [string, string] {
  const i = v.indexOf(sep);
  if (i <= 0) throw new InvalidArgument(`${what}: expected ${what === '--write' ? 'PATH:CONTENT' : 'a value with ' + sep}, got '${v}'`);
  return [v.slice(0, i), v.slice(i + 1)];
}

export function parseSysprepOptions(o: Record<string, string | boolean | string[]>): SysprepOptions {
  const opts: SysprepOptions = { sshInject: [], write: [], firstboot: [] };
  const hn = str(o.hostname);
  if (hn !== undefined) opts.hostname = hn;
  const rp = str(o['root-password']);
  if (rp !== undefined) {
    if (rp === 'random') opts.rootPassword = { kind: 'random' };
    else if (rp.startsWith('password:')) opts.rootPassword = { kind: 'password', value: rp.slice('password:'.length) };
    else if (rp.startsWith('file:')) {
      const f = rp.slice(5);
      let text: string;
      try { text = fs.readFileSync(f, 'utf8'); } catch (err) { throw ioError(err, f, '--root-password file'); }
      opts.rootPassword = { kind: 'password', value: text.split('\n')[0]! };
    } else throw new InvalidArgument(`--root-password: expected password:PASS, file:FILE or random`);
    if (opts.rootPassword.kind === 'password' && opts.rootPassword.value === '') throw new InvalidArgument('--root-password: empty password');
  }
  for (const v of (o['ssh-inject'] as string[] | undefined) ?? []) {
    const [user, rest] = splitOnce(v, ':', '--ssh-inject');
    if (rest.startsWith('string:')) opts.sshInject.push({ user, key: rest.slice(7) });
    else if (rest.startsWith('file:')) {
      const f = rest.slice(5);
      try { opts.sshInject.push({ user, key: fs.readFileSync(f, 'utf8').trim() }); } catch (err) { throw ioError(err, f, '--ssh-inject key file'); }
    } else throw new InvalidArgument('--ssh-inject: expected USER:string:KEY or USER:file:PATH');
    if (!/^(ssh-|ecdsa-|sk-)/.test(opts.sshInject[opts.sshInject.length - 1]!.key.replace(/^.*?(ssh-|ecdsa-|sk-)/, '$1'))) {
      throw new InvalidArgument('--ssh-inject: the key does not look like an OpenSSH public key');
    }
  }
  for (const v of (o.write as string[] | undefined) ?? []) {
    const [p, content] = splitOnce(v, ':', '--write');
    opts.write.push({ path: p, content });
  }
  for (const f of (o.firstboot as string[] | undefined) ?? []) {
    let content: string;
    try { content = fs.readFileSync(f, 'utf8'); } catch (err) { throw ioError(err, f, '--firstboot script'); }
    opts.firstboot.push({ name: path.basename(f), content });
  }
  return opts;
}

export function listOperations(): string {
  const w = Math.max(...OPERATIONS.map((o) => o.name.length));
  return OPERATIONS.map((o) => {
    const mark = o.option ? ' ' : o.defaultEnabled ? '*' : ' ';
    const extra = o.option ? ` [with ${o.option}]` : '';
    return `${o.name.padEnd(w)} ${mark} ${o.description}${extra}`;
  }).join('\n') + '\n';
}

export const command: Command = {
  summary: 'prepare a Linux guest image without booting it (machine-id, SSH keys, logs, hostname ...)',
  async run(argv) {
    const { opts, positional, help } = parseArgs(argv, [
      { long: 'list' },
      { long: 'ops', value: true },
      { long: 'operations', key: 'ops', value: true },
      { long: 'dry-run' },
      { long: 'hostname', value: true },
      { long: 'root-password', value: true },
      { long: 'ssh-inject', value: true, multi: true },
      { long: 'write', value: true, multi: true },
      { long: 'firstboot', value: true, multi: true },
      { short: 'f', long: 'format', value: true },
      { long: 'output', value: true },
    ]);
    if (help) { process.stdout.write(HELP); return EXIT.OK; }
    if (opts.list) { process.stdout.write(listOperations()); return EXIT.OK; }
    needPositional(positional, 1, USAGE);
    const mode = outputMode(opts.output);
    const sopts = parseSysprepOptions(opts);
    const ops = selectOps(str(opts.ops), sopts);
    const report = await runSysprep(positional[0]!, ops, sopts, { dryRun: opts['dry-run'] === true, format: str(opts.format) });
    if (mode === 'json') { printJson(report); return EXIT.OK; }
    const lines = [`${report.dryRun ? 'dry run (nothing written): ' : ''}${report.filesystem}`];
    for (const r of report.operations) {
      if (r.changes.length === 0 && r.notes.length === 0) { lines.push(`  ${r.op}: nothing to do`); continue; }
      for (const c of r.changes) lines.push(`  ${r.op}: ${c}`);
      for (const n of r.notes) lines.push(`  ${r.op}: note: ${n}`);
    }
    if (report.rootPassword) lines.push(`root password: ${report.rootPassword}`);
    process.stdout.write(lines.join('\n') + '\n');
    return EXIT.OK;
  },
};
