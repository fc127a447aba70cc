// Services: sshd on, firewall off, and what cloud-init will do.
import path from 'node:path/posix';
import type { ExtFs } from '../../fs/ext.js';
import type { SysprepOp } from '../types.js';
import { findUnit, forceSymlink, listMatching, parseEnvFile } from '../util.js';

const ETC_UNITS = '/etc/systemd/system';

/** [Install] WantedBy= targets and Alias= names of a unit file. */
function installSection(text: string): { wantedBy: string[]; alias: string[] } {
  const out = { wantedBy: [] as string[], alias: [] as string[] };
  let inInstall = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) { inInstall = line === '[Install]'; continue; }
    if (!inInstall) continue;
    const m = /^(WantedBy|Alias)\s*=\s*(.*)$/.exec(line);
    if (m) (m[1] === 'WantedBy' ? out.wantedBy : out.alias).push(...m[2]!.split(/\s+/).filter(Boolean));
  }
  return out;
}

export const enableSshd: SysprepOp = {
  name: 'enable-sshd',
  description: 'Enable the SSH server at boot (systemd symlink in multi-user.target.wants)',
  defaultEnabled: true,
  async run({ fs, changed, note }) {
    let unit: string | null = null;
    let name = '';
    for (const n of ['sshd.service', 'ssh.service']) {
      unit = await findUnit(fs, n);
      // Debian's sshd.service is only an alias link to ssh.service.
      if (unit && (await fs.lstat(unit))?.type === 'file') { name = n; break; }
      unit = null;
    }
    if (!unit) { note('no SSH server unit (ssh.service / sshd.service) in the guest: nothing to enable'); return; }
    const masked = path.join(ETC_UNITS, name);
    const mst = await fs.lstat(masked);
    if (mst?.type === 'symlink' && await fs.readlink(masked) === '/dev/null') { await fs.unlink(masked); changed(`unmasked ${name}`); }
    const inst = installSection((await fs.readFile(unit)).toString('utf8'));
    const targets = inst.wantedBy.length ? inst.wantedBy : ['multi-user.target'];
    const real = await fs.realpath(unit);
    // An existing link to the same file (/lib/... vs /usr/lib/... on merged-/usr) counts.
    const linksTo = async (link: string) => (await fs.lstat(link))?.type === 'symlink' && await fs.realpath(link) === real;
    for (const t of targets) {
      const link = path.join(ETC_UNITS, `${t}.wants`, name);
      if (await linksTo(link)) continue;
      await forceSymlink(fs, unit, link);
      changed(`enabled ${name}: ${link} -> ${unit}`);
    }
    for (const a of inst.alias) {
      const link = path.join(ETC_UNITS, a);
      if (await linksTo(link)) continue;
      if (await fs.exists(link) && (await fs.lstat(link))?.type !== 'symlink') continue;
      await forceSymlink(fs, unit, link);
      changed(`alias ${link} -> ${unit}`);
    }
    // Debian's own off switch.
    if (await fs.exists('/etc/ssh/sshd_not_to_be_run')) { await fs.unlink('/etc/ssh/sshd_not_to_be_run'); changed('removed /etc/ssh/sshd_not_to_be_run'); }
  },
};

/** Every enablement symlink of `unit` under /etc/systemd/system/*.wants (and aliases). */
async function enablementLinks(fs: ExtFs, names: string[]): Promise<string[]> {
  const out: string[] = [];
  if (!(await fs.isDir(ETC_UNITS))) return out;
  for (const d of await listMatching(fs, ETC_UNITS, /\.(wants|requires)$/)) {
    for (const n of names) {
      const p = path.join(d, n);
      if ((await fs.lstat(p))?.type === 'symlink') out.push(p);
    }
  }
  return out;
}

export const disableFirewall: SysprepOp = {
  name: 'disable-firewall',
  description: 'Disable firewalld and ufw (remove their enablement symlinks, ENABLED=no in /etc/ufw/ufw.conf)',
  defaultEnabled: false,
  async run({ fs, changed }) {
    const links = await enablementLinks(fs, ['firewalld.service', 'ufw.service']);
    const alias = path.join(ETC_UNITS, 'dbus-org.fedoraproject.FirewallD1.service');
    if ((await fs.lstat(alias))?.type === 'symlink') links.push(alias);
    for (const l of links) { await fs.unlink(l); changed(`disabled: removed ${l}`); }
    const conf = '/etc/ufw/ufw.conf';
    if (await fs.isFile(conf)) {
      const text = (await fs.readFile(conf)).toString('utf8');
      if (parseEnvFile(text).ENABLED !== 'no') {
        const lines = text.split('\n');
        let found = false;
        const out = lines.map((l) => /^\s*ENABLED\s*=/.test(l) ? (found = true, 'ENABLED=no') : l);
        if (!found) out.splice(out.length && out[out.length - 1] === '' ? out.length - 1 : out.length, 0, 'ENABLED=no');
        await fs.writeFile(conf, out.join('\n'));
        changed(`set ENABLED=no in ${conf}`);
      }
    }
  },
};

/** datasource_list from one cloud-init YAML file: inline [a, b] or a block list. */
export function parseDatasourceList(text: string): string[] | null {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^datasource_list\s*:\s*(.*)$/.exec(lines[i]!);
    if (!m) continue;
    const rest = m[1]!.replace(/#.*$/, '').trim();
    if (rest.startsWith('[')) {
      let acc = rest;
      while (!acc.includes(']') && i + 1 < lines.length) acc += ' ' + lines[++i]!.replace(/#.*$/, '');
      return acc.slice(1, acc.indexOf(']')).split(',').map((s) => s.trim().replace(/^['"]|['"]$/g, '')).filter(Boolean);
    }
    const items: string[] = [];
    while (i + 1 < lines.length && /^\s*-\s+/.test(lines[i + 1]!)) items.push(lines[++i]!.replace(/^\s*-\s+/, '').replace(/#.*$/, '').trim().replace(/^['"]|['"]$/g, ''));
    return items;
  }
  return null;
}

export interface CloudInitReport {
  /** The cloud-init program is there. */
  installed: boolean;
  /** /etc/cloud/cloud.cfg exists (configuration can outlive an uninstalled package). */
  configured: boolean;
  disabled: boolean;
  /** Effective datasource_list (later cloud.cfg.d files override), null = cloud-init's default probing. */
  datasources: string[] | null;
  /** Files that set datasource_list. */
  configuredIn: string[];
  /** /var/lib/cloud/instance exists: cloud-init thinks it already ran. */
  staleInstanceState: boolean;
}

export async function cloudInitReport(fs: ExtFs): Promise<CloudInitReport> {
  let installed = false;
  for (const p of ['/usr/bin/cloud-init', '/usr/local/bin/cloud-init', '/bin/cloud-init']) if (await fs.exists(p)) installed = true;
  const configured = await fs.isFile('/etc/cloud/cloud.cfg');
  const files = [
    ...((await fs.isFile('/etc/cloud/cloud.cfg')) ? ['/etc/cloud/cloud.cfg'] : []),
    ...(await listMatching(fs, '/etc/cloud/cloud.cfg.d', /\.cfg$/)),
  ];
  let datasources: string[] | null = null;
  const configuredIn: string[] = [];
  for (const f of files) {
    if (!(await fs.isFile(f))) continue;
    const ds = parseDatasourceList((await fs.readFile(f, 1024 * 1024)).toString('utf8'));
    if (ds) { datasources = ds; configuredIn.push(f); }
  }
  return {
    installed, configured,
    disabled: await fs.exists('/etc/cloud/cloud-init.disabled'),
    datasources, configuredIn,
    staleInstanceState: await fs.exists('/var/lib/cloud/instance'),
  };
}

export const cloudInit: SysprepOp = {
  name: 'cloud-init',
  description: 'Report whether cloud-init is installed and which datasources it will probe (changes nothing)',
  defaultEnabled: true,
  async run({ fs, note, results }) {
    const r = await cloudInitReport(fs);
    results.cloudInit = r;
    if (!r.installed) { note(`cloud-init is not installed${r.configured ? ' (but /etc/cloud/cloud.cfg exists)' : ''}`); return; }
    note(`cloud-init is installed${r.disabled ? ' but DISABLED (/etc/cloud/cloud-init.disabled)' : ''}; datasources: ${r.datasources ? r.datasources.join(', ') + ` (from ${r.configuredIn.join(', ')})` : 'default probing'}`);
    if (r.staleInstanceState) note('/var/lib/cloud/instance exists: cloud-init may consider this instance already configured');
  },
};
