// imgport v2v: read a VMware (or VirtualBox) VM description, decide the KVM guest,
// convert its disks through the engine, write NAME.xml (libvirt) and NAME.glance.json,
// optionally upload to Glance.

import fs from 'node:fs/promises';
import path from 'node:path';
import { CorruptImage, InvalidArgument, UnsupportedFeature, ioError } from '../engine/errors.js';
import { type FileAccessPolicy, sameDirectoryPolicy } from '../engine/policy.js';
import { convertImage } from '../engine/convert/index.js';
import { readVmx } from './vmx.js';
import { parseOvf, MAX_OVF_BYTES } from './ovf.js';
import { readOvaDescriptor, extractOvaDisks } from './ova-source.js';
import { planTarget, fileStem, type TargetOptions, type TargetPlan } from './target.js';
import { domainXml } from './libvirt.js';
import { glanceDocument, type GlanceDocument } from './glance-properties.js';
import { importToGlance, type ImportedImage } from './glance-import.js';
import type { SourceVM } from './model.js';

export type SourceKind = 'vmx' | 'ova' | 'ovf';

export interface LoadOptions {
  policy?: FileAccessPolicy;
  /** Read the disks' descriptors (VMX) / check the disk files exist (OVF). Default true. */
  readDisks?: boolean;
}

/** By extension, else by content: tar magic → OVA, XML → OVF, otherwise .vmx. */
export async function sourceKind(file: string): Promise<SourceKind> {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.vmx') return 'vmx';
  if (ext === '.ova') return 'ova';
  if (ext === '.ovf') return 'ovf';
  let fh: fs.FileHandle;
  try { fh = await fs.open(file, 'r'); } catch (err) { throw ioError(err, file, 'cannot open source'); }
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    if (bytesRead >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'ova';
    const t = head.subarray(0, bytesRead).toString('utf8').replace(/^\ufeff/, '').trimStart();
    if (t.startsWith('<?xml') || t.startsWith('<Envelope') || /^<\w+:Envelope/.test(t)) return 'ovf';
    return 'vmx';
  } finally {
    await fh.close();
  }
}

export async function loadSource(file: string, opts: LoadOptions = {}): Promise<SourceVM> {
  const kind = await sourceKind(file);
  const policy = opts.policy ?? sameDirectoryPolicy();
  if (kind === 'vmx') return readVmx(file, { policy, readDisks: opts.readDisks });
  if (kind === 'ova') {
    const { ovf, ovfName } = await readOvaDescriptor(file);
    const vm = parseOvf(ovf, `${file}/${ovfName}`);
    vm.origin = 'ova';
    vm.sourceFile = file;
    return vm;
  }
  let text: string;
  try {
    const st = await fs.stat(file);
    if (st.size > MAX_OVF_BYTES) throw new InvalidArgument(`OVF descriptor of ${st.size} bytes is not plausible`, { file });
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw ioError(err, file, 'cannot read OVF');
  }
  const vm = parseOvf(text, file);
  for (const d of vm.disks) {
    d.path = policy.resolve(d.ovfHref ?? d.fileName, file, 'ovf file');
    if (opts.readDisks !== false) await fs.access(d.path).catch((err) => { throw ioError(err, d.path!, 'disk named by the OVF'); });
  }
  return vm;
}

export interface V2vOptions extends Omit<TargetOptions, 'outputDir'> {
  source: string;
  outputDir: string;
  /** Write the XML and JSON only; no disk is converted. */
  dryRun?: boolean;
  policy?: FileAccessPolicy;
  /** Glance endpoint to upload to after converting. */
  importUrl?: string;
  token?: string;
  /** Progress lines for humans (stderr in the CLI). */
  log?: (line: string) => void;
  onProgress?: (disk: string, done: number, total: number) => void;
}

export interface V2vResult {
  vm: SourceVM;
  plan: TargetPlan;
  xmlFile: string;
  glanceFile: string;
  glance: GlanceDocument;
  /** dev → virtual size of the converted disk (source capacity on --dry-run). */
  sizes: Map<string, number>;
  imported?: ImportedImage[];
}

export async function runV2v(o: V2vOptions): Promise<V2vResult> {
  const log = o.log ?? (() => {});
  if (o.dryRun && o.importUrl) throw new InvalidArgument('--import needs converted disks; it cannot be combined with --dry-run');
  const policy = o.policy ?? sameDirectoryPolicy();
  const vm = await loadSource(o.source, { policy });
  const plan = planTarget(vm, { ...o, outputDir: o.outputDir });
  for (const w of plan.warnings) log(`warning: ${w}`);
  await fs.mkdir(o.outputDir, { recursive: true }).catch((err) => { throw ioError(err, o.outputDir, 'cannot create the output folder'); });

  const sizes = new Map<string, number>();
  if (!o.dryRun) {
    await convertDisks(vm, plan, o, policy, sizes, log);
  } else {
    for (const d of plan.disks) if (d.source.capacity !== undefined) sizes.set(d.dev, d.source.capacity);
  }

  const stem = fileStem(plan.name);
  const xmlFile = path.join(path.resolve(o.outputDir), `${stem}.xml`);
  const glanceFile = path.join(path.resolve(o.outputDir), `${stem}.glance.json`);
  const glance = glanceDocument(plan, sizes);
  await writeFileAtomic(xmlFile, domainXml(plan));
  await writeFileAtomic(glanceFile, JSON.stringify(glance, null, 2) + '\n');
  log(`wrote ${xmlFile}`);
  log(`wrote ${glanceFile}`);

  let imported: ImportedImage[] | undefined;
  if (o.importUrl) {
    imported = await importToGlance(o.importUrl, glance, { token: o.token, onImage: (n, b) => log(`uploading ${n} (${b} bytes) to ${o.importUrl}`) });
    for (const i of imported) log(`imported ${i.name} as image ${i.id}`);
  }
  return { vm, plan, xmlFile, glanceFile, glance, sizes, imported };
}

async function writeFileAtomic(file: string, data: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.unlink(tmp).catch(() => {});
    throw ioError(err, file, 'cannot write');
  }
}

async function convertDisks(vm: SourceVM, plan: TargetPlan, o: V2vOptions, policy: FileAccessPolicy, sizes: Map<string, number>, log: (s: string) => void): Promise<void> {
  const inputs = await diskInputs(vm, plan, o.outputDir);
  const written: string[] = [];
  try {
    for (const d of plan.disks) {
      const input = inputs.files.get(d.source.id);
      if (!input) throw new CorruptImage(`disk ${d.source.id} has no readable file`, { file: vm.sourceFile });
      log(`converting ${d.source.fileName} → ${d.file} (${d.format})`);
      const r = await convertImage({
        source: input.path,
        sourceFormat: input.format,
        target: d.file,
        targetFormat: d.format,
        policy,
        onProgress: o.onProgress ? (done, total) => o.onProgress!(d.dev, done, total) : undefined,
      });
      written.push(d.file);
      sizes.set(d.dev, r.virtualSize);
      d.source.capacity ??= r.virtualSize;
    }
  } catch (err) {
    // A guest with some disks converted is not a guest: remove what this run wrote.
    for (const f of written) await fs.unlink(f).catch(() => {});
    throw err;
  } finally {
    await inputs.cleanup();
  }
}

/**
 * Where each source disk's bytes can be opened as an image file. VMX and directory OVF:
 * the files themselves (the engine follows VMDK snapshot parents through the policy).
 * OVA: extracted once to a scratch folder next to the output (see ova-source.ts).
 */
async function diskInputs(vm: SourceVM, plan: TargetPlan, outDir: string): Promise<{ files: Map<string, { path: string; format?: string }>; cleanup(): Promise<void> }> {
  const files = new Map<string, { path: string; format?: string }>();
  if (vm.origin !== 'ova') {
    for (const d of vm.disks) {
      if (!d.path) throw new InvalidArgument(`disk ${d.id} was not resolved to a file`, { file: vm.sourceFile });
      if (d.ovfCompression) throw new UnsupportedFeature(`disk ${d.fileName} is ${d.ovfCompression}-compressed; unpack it or pass the .ova`, { file: vm.sourceFile });
      files.set(d.id, { path: d.path, format: d.format });
    }
    return { files, cleanup: async () => {} };
  }
  const scratch = await fs.mkdtemp(path.join(path.resolve(outDir), '.imgport-ova-'));
  try {
    const req = new Map<string, { dest: string; gzip?: boolean }>();
    plan.disks.forEach((d, i) => {
      const href = d.source.ovfHref ?? d.source.fileName;
      const dest = req.get(href)?.dest ?? path.join(scratch, `disk${i}${path.extname(href).replace(/[^.\w]/g, '')}`);
      req.set(href, { dest, gzip: d.source.ovfCompression === 'gzip' });
      files.set(d.source.id, { path: dest, format: d.source.format });
    });
    await extractOvaDisks(vm.sourceFile, { files: req });
  } catch (err) {
    await fs.rm(scratch, { recursive: true, force: true });
    throw err;
  }
  return { files, cleanup: () => fs.rm(scratch, { recursive: true, force: true }) };
}
