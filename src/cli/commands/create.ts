import type { Command } from '../main.js';
import { parseArgs, parseKeyValues, str } from '../args.js';
import { EXIT } from '../exit.js';
import { InvalidArgument } from '../../engine/errors.js';
import { createImage } from '../../engine/ops/create.js';
import { parseSize } from '../../engine/ops/size.js';
import { findFormat } from '../../engine/formats/registry.js';

const USAGE = 'imgport create [-f FMT] [-o OPTS] [-b BACKING [-F FMT]] FILE [SIZE]';

export const command: Command = {
  summary: 'create a new empty image',
  async run(argv) {
    const { opts, positional, help } = parseArgs(argv, [
      { short: 'f', value: true, key: 'format' },
      { short: 'o', value: true, multi: true, key: 'options' },
      { short: 'b', value: true, key: 'backing' },
      { short: 'F', value: true, key: 'backingFmt' },
      { short: 'u', key: '_unsafe' },
    ]);
    const format = str(opts.format) ?? 'raw';
    if (help) {
      const specs = findFormat(format)?.createOptions ?? [];
      process.stdout.write(`usage: ${USAGE}\n\n  SIZE  bytes, or with a k, M, G or T suffix; may be omitted with -b\n\noptions for -f ${format}:\n${specs.map((s) => `  ${s.name.padEnd(20)} ${s.help}${s.default ? ` (default ${s.default})` : ''}`).join('\n') || '  (none)'}\n`);
      return EXIT.OK;
    }
    if (positional.length < 1 || positional.length > 2) throw new InvalidArgument(`expected FILE [SIZE]\nusage: ${USAGE}`);
    const [file, sizeText] = positional as [string, string | undefined];
    const options = parseKeyValues(opts.options as string[] | undefined);
    // qemu-img accepts "-o size=..." too.
    let size = sizeText !== undefined ? parseSize(sizeText) : undefined;
    if (options.size !== undefined) { size ??= parseSize(options.size); delete options.size; }
    const backing = str(opts.backing);
    if (size === undefined && backing === undefined) throw new InvalidArgument(`image size is missing\nusage: ${USAGE}`, { file });
    const r = await createImage({ file, format, size, options, backingFile: backing, backingFormat: str(opts.backingFmt) });
    if (!opts.quiet) {
      const extra = Object.entries(options).map(([k, v]) => ` ${k}=${v}`).join('');
      const back = backing !== undefined ? ` backing_file=${backing}${str(opts.backingFmt) ? ` backing_fmt=${str(opts.backingFmt)}` : ''}` : '';
      process.stdout.write(`Formatting '${file}', fmt=${format}${extra} size=${r.size}${back}\n`);
    }
    return EXIT.OK;
  },
};
