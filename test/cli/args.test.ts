import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs, parseKeyValues, outputMode } from '../../src/cli/args.js';
import { progressReporter } from '../../src/cli/progress.js';

const SPECS = [
  { short: 'f', long: 'format', value: true },
  { short: 'o', value: true, multi: true, key: 'options' },
  { short: 'c', key: 'compress' },
  { short: 'p', key: 'progress' },
  { long: 'output', value: true },
  { long: 'shrink' },
];

test('qemu-img style options: attached values, clusters, long forms, repeats, --', () => {
  const r = parseArgs(['-fqcow2', '-cp', '--output=json', '-o', 'a=1', '-o', 'b=2', 'x', '--shrink', '--', '-weird-name'], SPECS);
  assert.deepEqual(r.opts, { format: 'qcow2', compress: true, progress: true, output: 'json', options: ['a=1', 'b=2'], shrink: true });
  assert.deepEqual(r.positional, ['x', '-weird-name']);
  assert.equal(r.help, false);
  assert.equal(parseArgs(['--format', 'raw', '-U', '--help'], SPECS).help, true);
  assert.equal(parseArgs(['-'], SPECS).positional[0], '-'); // "-" is stdout, not an option
});

test('option errors are InvalidArgument with a clear message', () => {
  assert.throws(() => parseArgs(['-z'], SPECS), /unknown option '-z'/);
  assert.throws(() => parseArgs(['--nope'], SPECS), /unknown option '--nope'/);
  assert.throws(() => parseArgs(['-f'], SPECS), /'-f' needs a value/);
  assert.throws(() => parseArgs(['--shrink=yes'], SPECS), /takes no value/);
  assert.throws(() => outputMode('xml'), /human' or 'json/);
});

test('-o lists: commas split, ",," escapes a comma, later keys win', () => {
  assert.deepEqual(parseKeyValues(['cluster_size=65536,preallocation=off', 'backing_file=a,,b.qcow2', 'preallocation=full']),
    { cluster_size: '65536', preallocation: 'full', backing_file: 'a,b.qcow2' });
  assert.throws(() => parseKeyValues(['novalue']), /expected key=value/);
});

test('--progress json prints monotonic lines ending at 100 %', () => {
  const lines: string[] = [];
  const out = { write: (s: string) => { lines.push(s); return true; }, isTTY: false } as unknown as NodeJS.WriteStream;
  const report = progressReporter('json', out)!;
  for (let d = 0; d <= 1000; d += 1) report(d, 1000);
  report(1000, 1000);
  const parsed = lines.map((l) => JSON.parse(l) as { done: number; total: number; percent: number });
  assert.ok(parsed.length <= 1001 && parsed.length >= 100);
  assert.deepEqual(parsed[parsed.length - 1], { done: 1000, total: 1000, percent: 100 });
  for (let i = 1; i < parsed.length; i++) assert.ok(parsed[i]!.percent >= parsed[i - 1]!.percent);
  // A bar only on a terminal.
  assert.equal(progressReporter('bar', out), undefined);
});
