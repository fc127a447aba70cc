import type { Command } from '../main.js';
import { parseArgs, outputMode, needPositional, printJson, str } from '../args.js';
import { EXIT } from '../exit.js';
import { inspectGuest, inspectionHuman } from '../../guest/inspect.js';

const USAGE = 'imgport inspect-guest [-f FMT] [--output human|json] FILE';

export const command: Command = {
  summary: 'show the operating system inside an image (distro, arch, hostname, fstab, kernels, virtio drivers, cloud-init)',
  async run(argv) {
    const { opts, positional, help } = parseArgs(argv, [
      { short: 'f', long: 'format', value: true },
      { long: 'output', value: true },
    ]);
    if (help) {
      process.stdout.write(`usage: ${USAGE}\n\nReads the Linux root filesystem (ext2/3/4) of any image format without writing to it.\n\n  -f FMT         image format (probed when absent)\n  --output json  machine-readable\n`);
      return EXIT.OK;
    }
    needPositional(positional, 1, USAGE);
    const mode = outputMode(opts.output);
    const g = await inspectGuest(positional[0]!, { format: str(opts.format) });
    if (mode === 'json') printJson(g);
    else process.stdout.write(inspectionHuman(g));
    return EXIT.OK;
  },
};
