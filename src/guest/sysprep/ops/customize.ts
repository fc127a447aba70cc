// Customisation operations, enabled by their command-line option.
import path from 'node:path/posix';
import { InvalidArgument, NotFound } from '../../../engine/errors.js';
import type { SysprepOp } from '../types.js';
import { guestPath, readPasswd } from '../util.js';
import { randomPassword, randomSalt, sha512Crypt } from '../crypt.js';
import { addFirstbootScript } from '../firstboot.js';

const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function validHostname(name: string): boolean { return HOSTNAME_RE.test(name); }

export const hostname: SysprepOp = {
  name: 'hostname',
  description: 'Set the hostname (/etc/hostname, the 127.0.1.1 line of /etc/hosts, RHEL /etc/sysconfig/network)',
  defaultEnabled: true,
  option: '--hostname NAME',
  requested: (o) => o.hostname !== undefined,
  async run({ fs, opts, changed }) {
    const name = opts.hostname!;
    if (!validHostname(name)) throw new InvalidArgument(`--hostname: '${name}' is not a valid host name`);
    const short = name.split('.')[0]!;
    await fs.writeFile('/etc/hostname', `${name}\n`, (await fs.exists('/etc/hostname')) ? {} : { mode: 0o644 });
    changed(`/etc/hostname = ${name}`);
    const hosts = (await fs.readText('/etc/hosts')) ?? '127.0.0.1\tlocalhost\n';
    const entry = name === short ? `127.0.1.1\t${name}` : `127.0.1.1\t${name} ${short}`;
    const lines = hosts.split('\n');
    let replaced = false;
    const out = lines.map((l) => /^\s*127\.0\.1\.1\s/.test(l) ? (replaced = true, entry) : l);
    if (!replaced) {
      // After the localhost line, as Debian's installer writes it.
      const i = out.findIndex((l) => /^\s*127\.0\.0\.1\s/.test(l));
      out.splice(i >= 0 ? i + 1 : 0, 0, entry);
    }
    await fs.writeFile('/etc/hosts', out.join('\n'));
    changed(`/etc/hosts: ${entry.replace('\t', ' ')}`);
    const net = '/etc/sysconfig/network';
    if (await fs.isFile(net)) {
      const text = (await fs.readFile(net)).toString('utf8');
      const nl = text.split('\n').filter((l) => !/^\s*HOSTNAME\s*=/.test(l));
      if (nl.length && nl[nl.length - 1] === '') nl.pop();
      nl.push(`HOSTNAME=${name}`, '');
      await fs.writeFile(net, nl.join('\n'));
      changed(`${net}: HOSTNAME=${name}`);
    }
  },
};

export const rootPassword: SysprepOp = {
  name: 'root-password',
  description: 'Set the root password in /etc/shadow (SHA-512 crypt)',
  defaultEnabled: true,
  option: '--root-password password:PASS|random',
  requested: (o) => o.rootPassword !== undefined,
  async run({ fs, opts, changed, results }) {
    const sel = opts.rootPassword!;
    const plain = sel.kind === 'random' ? randomPassword() : sel.value;
    const shadow = await fs.readText('/etc/shadow');
    if (shadow === null) throw new NotFound(`${fs.label}: /etc/shadow not found`);
    const lines = shadow.split('\n');
    const i = lines.findIndex((l) => l.startsWith('root:'));
    if (i < 0) throw new NotFound(`${fs.label}: no root entry in /etc/shadow`);
    const f = lines[i]!.split(':');
    while (f.length < 9) f.push('');
    f[1] = sha512Crypt(plain, randomSalt());
    f[2] = String(Math.floor(Date.now() / 86_400_000));
    lines[i] = f.join(':');
    await fs.writeFile('/etc/shadow', lines.join('\n'));
    changed('root password set (SHA-512 crypt) in /etc/shadow');
    if (sel.kind === 'random') results.rootPassword = plain;
  },
};

export const sshInject: SysprepOp = {
  name: 'ssh-inject',
  description: "Add SSH public keys to a user's ~/.ssh/authorized_keys (owner and modes set)",
  defaultEnabled: true,
  option: '--ssh-inject USER:string:KEY',
  requested: (o) => o.sshInject.length > 0,
  async run({ fs, opts, changed }) {
    const users = await readPasswd(fs);
    for (const { user, key } of opts.sshInject) {
      const u = users.find((x) => x.name === user);
      if (!u) throw new NotFound(`${fs.label}: --ssh-inject: no user '${user}' in /etc/passwd`);
      if (!u.home.startsWith('/')) throw new InvalidArgument(`${fs.label}: user ${user} has no usable home directory`);
      if (!(await fs.isDir(u.home))) { await fs.mkdirp(path.dirname(u.home)); await fs.mkdir(u.home, { mode: 0o700, uid: u.uid, gid: u.gid }); }
      const dir = path.join(u.home, '.ssh');
      const st = await fs.lstat(dir);
      if (!st) await fs.mkdir(dir, { mode: 0o700, uid: u.uid, gid: u.gid });
      else if (st.type !== 'dir') throw new InvalidArgument(`${fs.label}: ${dir} is not a directory`);
      const file = path.join(dir, 'authorized_keys');
      const fst = await fs.lstat(file);
      if (fst && fst.type !== 'file') throw new InvalidArgument(`${fs.label}: ${file} is not a regular file`);
      const old = fst ? (await fs.readFile(file)).toString('utf8') : '';
      const k = key.trim();
      if (old.split('\n').some((l) => l.trim() === k)) continue;
      const text = old + (old && !old.endsWith('\n') ? '\n' : '') + k + '\n';
      await fs.writeFile(file, text, { mode: 0o600, uid: u.uid, gid: u.gid });
      await fs.chown(dir, u.uid, u.gid);
      await fs.chmod(dir, 0o700);
      changed(`added a key to ${file}`);
    }
  },
};

export const writeFiles: SysprepOp = {
  name: 'write',
  description: 'Write files (--write PATH:CONTENT; parent directories created)',
  defaultEnabled: true,
  option: '--write PATH:CONTENT',
  requested: (o) => o.write.length > 0,
  async run({ fs, opts, changed }) {
    for (const w of opts.write) {
      const p = guestPath(w.path, '--write');
      await fs.mkdirp(path.dirname(p));
      await fs.writeFile(p, w.content);
      changed(`wrote ${p} (${Buffer.byteLength(w.content)} bytes)`);
    }
  },
};

export const firstboot: SysprepOp = {
  name: 'firstboot',
  description: 'Run scripts once at first boot (--firstboot SCRIPT; a systemd oneshot unit)',
  defaultEnabled: true,
  option: '--firstboot SCRIPT',
  requested: (o) => o.firstboot.length > 0,
  async run({ fs, guest, opts, changed }) {
    for (const s of opts.firstboot) {
      const p = await addFirstbootScript(fs, guest.systemd, s.name, s.content);
      changed(`queued ${s.name} as ${p} (imgport-firstboot.service)`);
    }
  },
};
