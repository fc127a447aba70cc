// Network identity: MAC pinning rules, ifcfg hardware addresses, DHCP leases.
import path from 'node:path/posix';
import type { SysprepOp } from '../types.js';
import { listMatching } from '../util.js';

const RULES = '/etc/udev/rules.d';
const GENERATOR = '75-persistent-net-generator.rules';

export const udevPersistentNet: SysprepOp = {
  name: 'udev-persistent-net',
  description: `Empty ${RULES}/70-persistent-net.rules and ${GENERATOR} (MAC to interface-name pinning)`,
  defaultEnabled: true,
  async run({ fs, changed }) {
    for (const name of ['70-persistent-net.rules', GENERATOR]) {
      const p = path.join(RULES, name);
      const st = await fs.lstat(p);
      if (st?.type === 'file' && st.size > 0) { await fs.truncate(p); changed(`emptied ${p}`); }
    }
    // The generator shipped under /lib re-creates the 70- rules at boot; an empty file of
    // the same name in /etc masks it without touching packaged files.
    const mask = path.join(RULES, GENERATOR);
    if (!(await fs.exists(mask))) {
      for (const dir of ['/lib/udev/rules.d', '/usr/lib/udev/rules.d']) {
        if (await fs.isFile(path.join(dir, GENERATOR))) {
          await fs.mkdirp(RULES);
          await fs.writeFile(mask, '', { mode: 0o644 });
          changed(`masked ${dir}/${GENERATOR} with an empty ${mask}`);
          break;
        }
      }
    }
  },
};

export const netHwaddr: SysprepOp = {
  name: 'net-hwaddr',
  description: 'Drop HWADDR= and UUID= lines from /etc/sysconfig/network-scripts/ifcfg-*',
  defaultEnabled: true,
  async run({ fs, changed }) {
    for (const p of await listMatching(fs, '/etc/sysconfig/network-scripts', /^ifcfg-/)) {
      if (!(await fs.isFile(p))) continue;
      const text = (await fs.readFile(p)).toString('utf8');
      const lines = text.split('\n');
      const kept = lines.filter((l) => !/^\s*(HWADDR|UUID)\s*=/.test(l));
      if (kept.length !== lines.length) {
        await fs.writeFile(p, kept.join('\n'));
        changed(`removed ${lines.length - kept.length} HWADDR/UUID line(s) from ${p}`);
      }
    }
  },
};

export const dhcpClientState: SysprepOp = {
  name: 'dhcp-client-state',
  description: 'Remove DHCP client leases (/var/lib/dhcp/*, /var/lib/dhclient/*, NetworkManager *.lease)',
  defaultEnabled: true,
  async run({ fs, changed }) {
    const victims = [
      ...await listMatching(fs, '/var/lib/dhcp', /.*/),
      ...await listMatching(fs, '/var/lib/dhclient', /.*/),
      ...await listMatching(fs, '/var/lib/NetworkManager', /\.lease$/),
    ];
    for (const p of victims) { await fs.remove(p); changed(`removed ${p}`); }
  },
};
