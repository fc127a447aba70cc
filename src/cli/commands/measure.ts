import type { Command } from '../main.js';
import { parseArgs, parseKeyValues, outputMode, printJson, str } from '../args.js';
import { EXIT } from '../exit.js';
import { InvalidArgument } from '../../engine/errors.js';
import { measure } from '../../engine/ops/measure.js';
import { parseSize } from '../../engine/ops/size.js';

const USAGE = 'imgport measure [--output human|json] [-O FMT] [-o OPTS] [--size SIZE | [-f FMT] SRC]';

export const command: Command = {
  summary: 'how large a new or converted image file would be',
  async run(argv) {
    const { opts, positional, help } = parseArgs(argv, [
      { short: 'f', value: true, key: 'srcFmt' },
      { short: 'O', value: true, key: 'dstFmt' },
      { short: 'o', value: true, multi: true, key: 'options' },
      { long: 'size', value: true },
      { long: 'output', value: true },
    ]);
    if (help) {
      process.stdout.write(`usage: ${USAGE}\n\n  prints "required size" (for the data present) and "fully allocated size"\n`);
      return EXIT.OK;
    }
    const mode = outputMode(opts.output);
    const sizeText = str(opts.size);
    if (positional.length > 1) throw new InvalidArgument(`unexpected argument '${positional[1]}'\nusage: ${USAGE}`);
    if ((sizeText === undefined) === (positional.length === 0)) throw new InvalidArgument(`give either --size SIZE or SRC\nusage: ${USAGE}`);
    const r = await measure({
      targetFormat: str(opts.dstFmt) ?? 'raw',
      options: parseKeyValues(opts.options as string[] | undefined),
      size: sizeText !== undefined ? parseSize(sizeText) : undefined,
      source: positional[0],
      sourceFormat: str(opts.srcFmt),
    });
    if (mode === 'json') printJson({ required: r.required, 'fully-allocated': r.fullyAllocated });
    else process.stdout.write(`required size: ${r.required}\nfully allocated size: ${r.fullyAllocated}\n`);
    return EXIT.OK;
  },
};
