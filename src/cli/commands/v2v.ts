import type { Command } from '../main.js';
import { parseArgs, needPositional, str } from '../args.js';
import { EXIT } from '../exit.js';
import { progressReporter } from '../progress.js';
import { InvalidArgument } from '../../engine/errors.js';
import { sameDirectoryPolicy } from '../../engine/policy.js';
import { loadSource, runV2v } from '../../migrate/v2v.js';
import { printSource } from '../../migrate/print-source.js';
import { addNetworkMapping, DISK_BUSES, NIC_MODELS, type DiskBus, type Graphics, type MachineType, type NetworkMap, type NicModel, type OutputFormat } from '../../migrate/target.js';

const USAGE = 'imgport v2v SRC.vmx|SRC.ova|SRC.ovf -o DIR [-of qcow2|raw] [--print-source] [--dry-run] [options]';

const HELP = `usage: ${USAGE}

Converts a VMware (or VirtualBox OVF) virtual machine to a KVM guest: DIR/NAME.xml
(libvirt domain), DIR/NAME-vda.qcow2 … (disks), DIR/NAME.glance.json (OpenStack image
properties).

  -o DIR                 output folder (created if missing)
  -of qcow2|raw          disk format (default qcow2)
  --print-source         print the source VM (virt-v2v's fields) and exit
  --dry-run              write NAME.xml and NAME.glance.json, convert nothing
  --name NAME            name of the new guest (default: the source's)
  --disk-bus BUS         virtio|sata|scsi|ide (default: virtio when the guest has the drivers, else sata)
  --nic-model MODEL      virtio|e1000e|e1000|rtl8139 (default: virtio for Linux, e1000e for Windows)
  --machine q35|pc       machine type (default: q35; pc for very old BIOS guests)
  --graphics vnc|spice|none  (default vnc)
  --network NAME         put every NIC on libvirt network NAME (default: 'default')
  --bridge NAME          put every NIC on host bridge NAME
  --network IN:OUT, --bridge IN:OUT   map the NICs of source network IN only (repeatable)
  --import URL           upload each converted disk to this Glance v2 endpoint
  --os-token TOKEN       X-Auth-Token for --import
  -p                     progress bar per disk (on a terminal)
  --progress json        progress as JSON lines on stderr: {"disk","done","total","percent"}
  -q                     no messages on stderr
  --allow-absolute       follow absolute disk paths in the .vmx/.ovf (still inside the source's folder)
`;

function oneOf<T extends string>(v: string | undefined, allowed: readonly T[], opt: string): T | undefined {
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) throw new InvalidArgument(`${opt} must be one of ${allowed.join(', ')}, not '${v}'`);
  return v as T;
}

export const command: Command = {
  summary: 'convert a VMware VM (.vmx, .ova, .ovf) to a libvirt/KVM guest',
  async run(argvIn) {
    // qemu-img/virt-v2v spell the output format "-of"; getopt would read it as "-o f".
    const argv = argvIn.map((a) => (a === '-of' ? '--output-format' : a.startsWith('-of=') ? `--output-format=${a.slice(4)}` : a));
    const { opts, positional, help } = parseArgs(argv, [
      { short: 'o', long: 'output-dir', value: true, key: 'outdir' },
      { long: 'output-format', value: true },
      { long: 'print-source' },
      { long: 'dry-run' },
      { long: 'name', value: true },
      { long: 'disk-bus', value: true },
      { long: 'nic-model', value: true },
      { long: 'machine', value: true },
      { long: 'graphics', value: true },
      { long: 'network', value: true, multi: true },
      { long: 'bridge', value: true, multi: true },
      { long: 'import', value: true },
      { long: 'os-token', value: true },
      { long: 'allow-absolute' },
      { short: 'p', key: 'bar' },
      { long: 'progress', value: true },
    ]);
    if (help) { process.stdout.write(HELP); return EXIT.OK; }
    needPositional(positional, 1, USAGE);
    const source = positional[0]!;
    const policy = sameDirectoryPolicy({ allowAbsolute: opts['allow-absolute'] === true });

    if (opts['print-source'] === true) {
      const vm = await loadSource(source, { policy });
      process.stdout.write(printSource(vm));
      return EXIT.OK;
    }
    const outputDir = str(opts.outdir);
    if (!outputDir) throw new InvalidArgument(`-o DIR is required\nusage: ${USAGE}`);

    const networks: NetworkMap = { bySource: new Map() };
    for (const v of (opts.network as string[] | undefined) ?? []) addNetworkMapping(networks, 'network', v);
    for (const v of (opts.bridge as string[] | undefined) ?? []) addNetworkMapping(networks, 'bridge', v);

    const quiet = opts.quiet === true;
    const log = (line: string) => { if (!quiet) process.stderr.write(`${line}\n`); };
    const progressMode = str(opts.progress);
    if (progressMode !== undefined && progressMode !== 'json') throw new InvalidArgument(`--progress must be 'json', not '${progressMode}'`);
    let current: { disk: string; report?: (done: number, total: number) => void } | undefined;
    const onProgress = progressMode === 'json'
      ? (disk: string, done: number, total: number) => {
        const percent = total > 0 ? Math.floor((done / total) * 10000) / 100 : 100;
        process.stderr.write(JSON.stringify({ disk, done, total, percent }) + '\n');
      }
      : opts.bar === true
        ? (disk: string, done: number, total: number) => {
          if (current?.disk !== disk) current = { disk, report: progressReporter('bar', process.stderr) };
          current.report?.(done, total);
        }
        : undefined;
    const r = await runV2v({
      onProgress,
      source,
      outputDir,
      outputFormat: oneOf<OutputFormat>(str(opts['output-format']), ['qcow2', 'raw'], '-of'),
      dryRun: opts['dry-run'] === true,
      name: str(opts.name),
      diskBus: oneOf<DiskBus>(str(opts['disk-bus']), DISK_BUSES, '--disk-bus'),
      nicModel: oneOf<NicModel>(str(opts['nic-model']), NIC_MODELS, '--nic-model'),
      machine: oneOf<MachineType>(str(opts.machine), ['q35', 'pc'], '--machine'),
      graphics: oneOf<Graphics>(str(opts.graphics), ['vnc', 'spice', 'none'], '--graphics'),
      networks,
      importUrl: str(opts.import),
      token: str(opts['os-token']),
      policy,
      log,
    });
    process.stdout.write(`${r.xmlFile}\n${r.glanceFile}\n`);
    if (!r.plan.disks.length) log('warning: the source VM has no disks');
    return EXIT.OK;
  },
};
