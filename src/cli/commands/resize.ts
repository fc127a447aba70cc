import type { Command } from '../main.js';
import { parseArgs, needPositional, str } from '../args.js';
import { EXIT } from '../exit.js';
import { resizeImage } from '../../engine/ops/resize.js';

const USAGE = 'imgport resize [-f FMT] [--shrink] [--preallocation MODE] FILE [+|-]SIZE';

export const command: Command = {
  summary: "change an image's virtual size",
  async run(argv) {
    // "-1G" is a size here, not an option: keep the last argument out of option parsing.
    const last = argv[argv.length - 1];
    const sizeArg = last !== undefined && /^[+-]\d/.test(last) ? last : undefined;
    const { opts, positional, help } = parseArgs(sizeArg !== undefined ? argv.slice(0, -1) : argv, [
      { short: 'f', value: true, key: 'format' },
      { long: 'shrink' },
      { long: 'preallocation', value: true },
    ]);
    if (help) {
      process.stdout.write(`usage: ${USAGE}\n\n  SIZE   new size, or +SIZE / -SIZE relative to the current one\n  --shrink  needed to make an image smaller (data past the end is lost)\n`);
      return EXIT.OK;
    }
    if (sizeArg !== undefined) positional.push(sizeArg);
    needPositional(positional, 2, USAGE);
    await resizeImage(positional[0]!, positional[1]!, { format: str(opts.format), shrink: opts.shrink === true, preallocation: str(opts.preallocation) });
    if (!opts.quiet) process.stdout.write('Image resized.\n');
    return EXIT.OK;
  },
};
