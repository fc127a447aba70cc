// `imgport inspect FILE`: the safety verdict for an untrusted image, as JSON.
// Exit 0 when safe, 3 when unsafe, 1 on any other error.
import type { Command } from '../main.js';
import { parseArgs, needPositional, printJson, str } from '../args.js';
import { EXIT } from '../exit.js';
import { parseSize } from '../../engine/ops/size.js';
import { inspectFile, type InspectOptions } from '../../engine/inspect/index.js';

const USAGE = 'imgport inspect [--format F] [--max-size SIZE] [--allow-backing] [--allow-data-file] [--allow-vmdk-create-type T]... FILE';

export const command: Command = {
  summary: 'judge whether an untrusted image is safe to use, from its bytes alone',
  async run(argv) {
    const { opts, positional, help } = parseArgs(argv, [
      { short: 'f', long: 'format', value: true },
      { long: 'max-size', value: true },
      { long: 'allow-backing' },
      { long: 'allow-data-file' },
      { long: 'allow-vmdk-create-type', value: true, multi: true },
    ]);
    if (help) {
      process.stdout.write(`usage: ${USAGE}\n\n` +
        '  -f, --format F              the declared Glance disk_format (raw, qcow2, vmdk, vhd, vhdx, vdi, iso, ami, ari, aki, ploop);\n' +
        '                              other content is refused as format-mismatch\n' +
        '  --max-size SIZE             largest accepted virtual size (default 4T)\n' +
        '  --allow-backing             accept a backing file / parent (its name is reported, never opened)\n' +
        '  --allow-data-file           accept a qcow2 external data file\n' +
        '  --allow-vmdk-create-type T  add T to the accepted VMDK create types (monolithicSparse, streamOptimized)\n' +
        'Prints the verdict as JSON. Exit status: 0 safe, 3 unsafe, 1 error.\n');
      return EXIT.OK;
    }
    needPositional(positional, 1, USAGE);
    const o: InspectOptions = {
      allowBackingFile: opts['allow-backing'] === true,
      allowDataFile: opts['allow-data-file'] === true,
    };
    const max = str(opts['max-size']);
    if (max !== undefined) o.maxVirtualSize = parseSize(max, 'maximum size');
    const fmt = str(opts.format);
    if (fmt !== undefined) o.expectedFormat = fmt;
    const types = opts['allow-vmdk-create-type'];
    if (Array.isArray(types)) o.allowedVmdkCreateTypes = ['monolithicSparse', 'streamOptimized', ...types];
    const verdict = await inspectFile(positional[0]!, o);
    printJson(verdict);
    return verdict.safe ? EXIT.OK : EXIT.UNSAFE;
  },
};
