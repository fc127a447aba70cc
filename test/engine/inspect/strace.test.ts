// `imgport inspect` opens the file it is given and nothing an image names: every
// reference-bearing image of the hostile corpus is inspected through the CLI under
// strace, and the log of open/openat calls is checked against the names inside.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { generateCorpus, type CorpusCase } from '../../fixtures-gen/hostile.js';

const repo = path.resolve(import.meta.dirname, '../../..');
// tsx by absolute URL, so the CLI can run with the image directory as its working directory.
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const hasStrace = spawnSync('strace', ['-V']).status === 0;
let dir: string;
let cases: CorpusCase[];

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-'));
  cases = generateCorpus(dir);
  // Decoys: files with the names the images use, where a careless reader would find them.
  for (const n of ['base.qcow2', 'x-s002.vmdk', 'passwd']) fs.writeFileSync(path.join(dir, n), 'decoy');
});
after(() => { fs.rmSync(dir, { recursive: true, force: true }); });

function cli(args: string[], log: string) {
  return spawnSync('strace', ['-f', '-qq', '-e', 'trace=openat,open', '-o', log, process.execPath, '--import', tsx, path.join(repo, 'src/cli/main.ts'), 'inspect', ...args], { cwd: dir, encoding: 'utf8' });
}

/** Paths passed to open/openat in a strace log, made absolute against `cwd`. */
function openedPaths(log: string, cwd: string): string[] {
  const out: string[] = [];
  for (const line of fs.readFileSync(log, 'utf8').split('\n')) {
    const m = /\bopen(?:at)?\((?:AT_FDCWD|\d+<[^>]*>|\d+), "((?:[^"\\]|\\.)*)"/.exec(line) ?? /\bopen\("((?:[^"\\]|\\.)*)"/.exec(line);
    if (m) out.push(path.resolve(cwd, m[1]!));
  }
  return out;
}

test('inspect opens no file named inside an image', { skip: !hasStrace && 'strace not installed' }, () => {
  const withNames = cases.filter((c) => c.names && c.names.length > 0);
  assert.ok(withNames.length >= 10);
  const seen = new Set<string>();
  for (const c of withNames) {
    const args = [...(c.opts?.allowBackingFile ? ['--allow-backing'] : []), ...(c.opts?.allowDataFile ? ['--allow-data-file'] : []), c.file];
    const key = args.join(' ');
    if (seen.has(key)) continue;
    seen.add(key);
    const log = path.join(dir, 'strace.log');
    const r = cli(args, log);
    assert.equal(r.status, c.safe ? 0 : 3, `${c.name}: exit ${r.status}\n${r.stderr}`);
    const verdict = JSON.parse(r.stdout);
    assert.equal(verdict.safe, c.safe, c.name);
    const opened = openedPaths(log, dir);
    // Positive control: the image itself was opened, so the log is real.
    assert.ok(opened.includes(c.file), `${c.name}: the image itself is not in the strace log`);
    const forbidden = new Set<string>(['/etc/passwd']);
    for (const n of c.names!) {
      forbidden.add(path.resolve(dir, n));
      forbidden.add(path.resolve('/', n));
    }
    for (const p of opened) {
      assert.ok(!forbidden.has(p), `${c.name}: opened ${p}`);
      assert.ok(p === c.file || !p.startsWith(dir + path.sep), `${c.name}: opened ${p} in the image directory`);
    }
  }
});

test('exit statuses: 0 safe, 3 unsafe, 1 error', () => {
  const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', path.join(repo, 'src/cli/main.ts'), 'inspect', ...args], { cwd: repo, encoding: 'utf8' });
  assert.equal(run([path.join(dir, 'ok-v3.qcow2')]).status, 0);
  assert.equal(run([path.join(dir, 'backing-passwd.qcow2')]).status, 3);
  assert.equal(run(['--format', 'raw', path.join(dir, 'ok-v3.qcow2')]).status, 3);
  assert.equal(run(['--max-size', '10M', path.join(dir, 'ok-v3.qcow2')]).status, 3);
  assert.equal(run([path.join(dir, 'no-such-file')]).status, 1);
  assert.equal(run(['--format', 'floppy', path.join(dir, 'ok-v3.qcow2')]).status, 1);
  const ok = run(['--allow-backing', path.join(dir, 'ok-overlay.qcow2')]);
  assert.equal(ok.status, 0);
  assert.equal(JSON.parse(ok.stdout).backingFile, 'base.qcow2');
});

test('inspect reads only the head and tail it needs', { skip: !hasStrace && 'strace not installed' }, () => {
  const big = path.join(dir, 'big.raw');
  fs.writeFileSync(big, '');
  fs.truncateSync(big, 4 * 1024 ** 3);
  for (const [file, bound] of [[big, 64 * 1024 + 4096], [path.join(dir, 'ok-v3.qcow2'), 16 * 1024 * 1024 + 4096]] as const) {
    // One log per thread (-ff) so no call is split by another thread; -y names each fd's file.
    const logDir = fs.mkdtempSync(path.join(dir, 'strace-'));
    const r = spawnSync('strace', ['-f', '-ff', '-y', '-qq', '-e', 'trace=pread64,read,preadv', '-o', path.join(logDir, 'log'), process.execPath, '--import', tsx, path.join(repo, 'src/cli/main.ts'), 'inspect', file], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    let calls = 0;
    let bytes = 0;
    for (const f of fs.readdirSync(logDir)) {
      for (const line of fs.readFileSync(path.join(logDir, f), 'utf8').split('\n')) {
        const rd = /\b(?:pread64|read|preadv)\(\d+<([^>]*)>,.*\) = (\d+)/.exec(line);
        if (rd && rd[1] === file) { calls++; bytes += Number(rd[2]); }
      }
    }
    const fd = calls > 0 ? 0 : -1;
    assert.ok(fd >= 0, `${file}: no read in the strace logs`);
    assert.ok(bytes > 0 && bytes <= bound, `${path.basename(file)}: read ${bytes} bytes (bound ${bound})`);
  }
});
