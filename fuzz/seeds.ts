// Seed images for the fuzzer: one small valid image per format the engine reads (made
// by qemu-img and the corpus writers), rebuilt from code on every run.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { writeIso } from '../test/fixtures-gen/hostile.js';

const MiB = 1024 * 1024;

export type Seeds = Array<{ name: string; bytes: Buffer }>;

export function makeSeeds(dir: string): Seeds {
  const q = (...a: string[]) => execFileSync('qemu-img', a, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const io = (fmt: string, file: string, ...cmds: string[]) => execFileSync('qemu-io', ['-f', fmt, ...cmds.flatMap((c) => ['-c', c]), file], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const data = Buffer.alloc(2 * MiB);
  for (let i = 0; i < data.length; i += 4096) data.fill((i / 4096) & 0xff, i, i + 2048);
  fs.writeFileSync(path.join(dir, 'data.raw'), data);
  q('convert', '-O', 'qcow2', '-o', 'cluster_size=4k', 'data.raw', 'v3.qcow2');
  q('snapshot', '-c', 's1', 'v3.qcow2');
  io('qcow2', 'v3.qcow2', 'write -P 7 8k 8k');
  q('convert', '-O', 'qcow2', '-o', 'compat=0.10,cluster_size=4k', 'data.raw', 'v2.qcow2');
  q('convert', '-c', '-O', 'qcow2', '-o', 'cluster_size=4k', 'data.raw', 'compressed.qcow2');
  q('create', '-f', 'qcow2', '-o', 'cluster_size=4k', '-b', 'v2.qcow2', '-F', 'qcow2', 'overlay.qcow2');
  q('convert', '-O', 'qcow2', '-o', 'cluster_size=64k,extended_l2=on', 'data.raw', 'extl2.qcow2');
  io('qcow2', 'extl2.qcow2', 'write -z 64k 8k', 'write -P 9 1M 4k');
  q('convert', '-c', '-O', 'qcow2', '-o', 'cluster_size=4k,compression_type=zstd', 'data.raw', 'zstd.qcow2');
  q('convert', '-O', 'qcow', 'data.raw', 'v1.qcow');
  q('convert', '-O', 'vmdk', 'data.raw', 'sparse.vmdk');
  q('convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', 'data.raw', 'stream.vmdk');
  q('convert', '-O', 'vpc', 'data.raw', 'dynamic.vhd');
  q('convert', '-O', 'vpc', '-o', 'subformat=fixed', 'data.raw', 'fixed.vhd');
  q('convert', '-O', 'vhdx', 'data.raw', 'dynamic.vhdx');
  q('convert', '-O', 'vdi', 'data.raw', 'dynamic.vdi');
  writeIso(path.join(dir, 'image.iso'), 128);
  fs.writeFileSync(path.join(dir, 'gpt.raw'), '');
  fs.truncateSync(path.join(dir, 'gpt.raw'), 1 * MiB);
  execFileSync('sfdisk', ['--quiet', path.join(dir, 'gpt.raw')], { input: 'label: gpt\nstart=64, type=L\n', stdio: ['pipe', 'ignore', 'pipe'] });
  fs.writeFileSync(path.join(dir, 'desc.vmdk'), '# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW 4096 FLAT "data.raw" 0\n');
  const seeds: Seeds = [];
  for (const n of ['v3.qcow2', 'v2.qcow2', 'compressed.qcow2', 'overlay.qcow2', 'extl2.qcow2', 'zstd.qcow2', 'v1.qcow', 'sparse.vmdk', 'stream.vmdk', 'dynamic.vhd', 'fixed.vhd', 'dynamic.vhdx', 'dynamic.vdi', 'image.iso', 'gpt.raw', 'desc.vmdk']) {
    seeds.push({ name: n, bytes: fs.readFileSync(path.join(dir, n)) });
  }
  const small = fs.readFileSync(path.join(dir, 'v2.qcow2'));
  for (const [name, cmd] of [['v2.qcow2.gz', 'gzip'], ['v2.qcow2.xz', 'xz'], ['v2.qcow2.zst', 'zstd'], ['v2.qcow2.bz2', 'bzip2']] as const) {
    seeds.push({ name, bytes: execFileSync(cmd, ['-c'], { input: small, maxBuffer: 64 * MiB }) });
  }
  return seeds;
}
