// Sysprep on a real Debian root filesystem inside qcow2 and raw disks, edited in place;
// every result is checked with our reader and independently (qemu-img convert + debugfs,
// e2fsck -fn, qemu-img check).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildFixture, cli, copy, debugfs, debugfsStat, e2fsck, FIXTURE_TOOLS, missingTools, sha256, toRaw, type Fixture } from './fixture.js';
import { runSysprep, selectOps, OPERATIONS, type SysprepOptions } from '../../src/guest/sysprep/index.js';
import { openGuest } from '../../src/guest/guest.js';
import { sha512Crypt } from '../../src/guest/sysprep/crypt.js';
import { ImgportError } from '../../src/engine/errors.js';

const missing = missingTools(FIXTURE_TOOLS);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@imgport';

function noOpts(): SysprepOptions { return { sshInject: [], write: [], firstboot: [] }; }

describe('sysprep on a Debian guest', { skip: missing.length ? `missing tools: ${missing.join(', ')}` : false }, () => {
  let fx: Fixture;
  before(() => { fx = buildFixture(); });
  after(() => fx?.cleanup());

  it('runs every operation in place on qcow2 and each one did what it says', async () => {
    const img = copy(fx, 'gpt.qcow2', 'work.qcow2');
    const script = path.join(fx.dir, 'hello.sh');
    fs.writeFileSync(script, '#!/bin/sh\necho hello > /root/firstboot-ran\n');
    const opts: SysprepOptions = {
      hostname: 'web1.example.com',
      rootPassword: { kind: 'password', value: 'S3cret!' },
      sshInject: [{ user: 'alice', key: KEY }, { user: 'root', key: KEY }],
      write: [{ path: '/etc/imgport/hello.txt', content: 'written by imgport\n' }],
      firstboot: [{ name: 'hello.sh', content: fs.readFileSync(script, 'utf8') }],
    };
    // alice is only in the fixture's home dir; give her a passwd entry through --write? No:
    // ssh-inject must refuse unknown users, so add her with a first pass.
    await assert.rejects(runSysprep(img, selectOps('ssh-inject', opts), opts), (e: ImgportError) => e.code === 'NOT_FOUND' && /no user 'alice'/.test(e.message));
    {
      const g = await openGuest(img, { writable: true });
      const passwd = await g.fs.readText('/etc/passwd');
      await g.fs.writeFile('/etc/passwd', passwd + 'alice:x:1000:1000:Alice:/home/alice:/bin/bash\n');
      await g.close();
    }
    const report = await runSysprep(img, selectOps('defaults,disable-firewall', opts), opts);
    const byOp = Object.fromEntries(report.operations.map((r) => [r.op, r]));
    assert.deepEqual(Object.keys(byOp), OPERATIONS.map((o) => o.name));

    // --- our reader
    const g = await openGuest(img);
    const f = g.fs;
    try {
      assert.equal((await f.lstat('/etc/machine-id'))?.size, 0);
      assert.equal((await f.lstat('/etc/machine-id'))?.type, 'file');
      assert.equal((await f.lstat('/etc/udev/rules.d/70-persistent-net.rules'))?.size, 0);
      assert.equal((await f.lstat('/etc/udev/rules.d/75-persistent-net-generator.rules'))?.size, 0);
      const ifcfg = await f.readText('/etc/sysconfig/network-scripts/ifcfg-eth0');
      assert.doesNotMatch(ifcfg!, /HWADDR|UUID/);
      assert.match(ifcfg!, /^DEVICE=eth0$/m);
      assert.match(ifcfg!, /^BOOTPROTO=dhcp$/m);
      assert.deepEqual((await f.readdir('/etc/ssh')).filter((e) => e.startsWith('ssh_host_')), []);
      const unit = await f.readText('/etc/systemd/system/imgport-ssh-hostkeys.service');
      assert.match(unit!, /ExecStart=\/usr\/bin\/ssh-keygen -A/);
      assert.match(unit!, /Before=ssh\.service/);
      assert.equal(await f.readlink('/etc/systemd/system/multi-user.target.wants/imgport-ssh-hostkeys.service'), '/etc/systemd/system/imgport-ssh-hostkeys.service');
      assert.equal((await f.lstat('/var/log/auth.log'))?.size, 0);
      assert.equal((await f.lstat('/var/log/apt/history.log'))?.size, 0);
      assert.equal((await f.lstat('/var/log/apt'))?.type, 'dir');
      assert.deepEqual(await f.readdir('/var/log/journal'), [], 'stale journald folder removed');
      // The symlink in /var/log was not followed.
      assert.equal((await f.lstat('/var/log/evil-link'))?.type, 'symlink');
      assert.equal(await f.exists('/root/.bash_history'), false);
      assert.equal(await f.exists('/home/alice/.bash_history'), false);
      assert.deepEqual(await f.readdir('/var/lib/dhcp'), []);
      assert.deepEqual(await f.readdir('/var/lib/dhclient'), []);
      assert.deepEqual(await f.readdir('/var/lib/NetworkManager'), []);
      assert.deepEqual(await f.readdir('/tmp'), []);
      assert.deepEqual(await f.readdir('/var/tmp'), []);
      assert.equal((await f.lstat('/tmp'))?.perm, 0o1777);
      assert.equal(await f.exists('/etc/systemd/system/multi-user.target.wants/ufw.service'), false);
      assert.match((await f.readText('/etc/ufw/ufw.conf'))!, /^ENABLED=no$/m);
      assert.equal(await f.readText('/etc/hostname'), 'web1.example.com\n');
      assert.match((await f.readText('/etc/hosts'))!, /^127\.0\.1\.1\tweb1\.example\.com web1$/m);
      assert.equal(await f.readText('/etc/imgport/hello.txt'), 'written by imgport\n');
      if (fx.realDistro) {
        const link = '/etc/systemd/system/multi-user.target.wants/ssh.service';
        assert.equal((await f.lstat(link))?.type, 'symlink');
        assert.equal(await f.realpath(link), await f.realpath('/lib/systemd/system/ssh.service'));
      }
    } finally {
      await g.close();
    }
    assert.deepEqual(report.cloudInit, {
      installed: true, configured: true, disabled: false, datasources: ['NoCloud', 'ConfigDrive', 'OpenStack', 'None'],
      configuredIn: ['/etc/cloud/cloud.cfg.d/90_dpkg.cfg'], staleInstanceState: false,
    });

    // --- independently: qemu-img check, then qemu-img convert + e2fsprogs
    const chk = spawnSync('qemu-img', ['check', img], { encoding: 'utf8' });
    assert.equal(chk.status, 0, chk.stdout + chk.stderr);
    assert.match(chk.stdout, /No errors were found/);
    const raw = toRaw(img);
    const [rc, out] = e2fsck(raw, fx.partOffset);
    assert.equal(rc, 0, out);
    const at = fx.partOffset;
    assert.equal(debugfs(raw, at, 'cat /etc/machine-id'), '');
    assert.equal(debugfsStat(raw, at, '/etc/machine-id')?.size, 0);
    assert.equal(debugfsStat(raw, at, '/etc/machine-id')?.mode, 0o444, 'mode kept');
    assert.equal(debugfs(raw, at, 'cat /etc/hostname'), 'web1.example.com\n');
    assert.doesNotMatch(debugfs(raw, at, 'ls /etc/ssh'), /ssh_host_/);
    assert.equal(debugfs(raw, at, 'cat /var/log/auth.log'), '');
    assert.equal(debugfsStat(raw, at, '/root/.bash_history'), null);
    assert.doesNotMatch(debugfs(raw, at, 'cat /etc/sysconfig/network-scripts/ifcfg-eth0'), /HWADDR/);
    assert.equal(debugfs(raw, at, 'cat /etc/hostname'), 'web1.example.com\n');
    // Password: the shadow hash verifies against the password we set.
    const shadowRoot = debugfs(raw, at, 'cat /etc/shadow').split('\n').find((l) => l.startsWith('root:'))!;
    const hash = shadowRoot.split(':')[1]!;
    const salt = hash.split('$')[2]!;
    assert.equal(sha512Crypt('S3cret!', salt), hash);
    const ossl = spawnSync('openssl', ['passwd', '-6', '-salt', salt, 'S3cret!'], { encoding: 'utf8' });
    if (ossl.status === 0) assert.equal(ossl.stdout.trim(), hash, 'openssl agrees');
    // authorized_keys: content, owner, modes.
    const ak = debugfsStat(raw, at, '/home/alice/.ssh/authorized_keys')!;
    assert.deepEqual([ak.type, ak.mode, ak.uid, ak.gid], ['regular', 0o600, 1000, 1000]);
    const sshDir = debugfsStat(raw, at, '/home/alice/.ssh')!;
    assert.deepEqual([sshDir.type, sshDir.mode, sshDir.uid, sshDir.gid], ['directory', 0o700, 1000, 1000]);
    assert.equal(debugfs(raw, at, 'cat /home/alice/.ssh/authorized_keys'), KEY + '\n');
    assert.equal(debugfs(raw, at, 'cat /root/.ssh/authorized_keys'), KEY + '\n');
    // firstboot: script, runner, unit, enablement link.
    assert.equal(debugfs(raw, at, 'cat /usr/local/lib/imgport-firstboot/scripts/0001-hello.sh'), '#!/bin/sh\necho hello > /root/firstboot-ran\n');
    assert.equal(debugfsStat(raw, at, '/usr/local/lib/imgport-firstboot/scripts/0001-hello.sh')?.mode, 0o755);
    assert.match(debugfs(raw, at, 'cat /etc/systemd/system/imgport-firstboot.service'), /Type=oneshot/);
    assert.match(debugfs(raw, at, 'stat /etc/systemd/system/multi-user.target.wants/imgport-firstboot.service'), /Type: symlink/);
    assert.equal(debugfsStat(raw, at, '/etc/udev/rules.d/70-persistent-net.rules')?.size, 0);
    fs.rmSync(raw);
  });

  it('runs the defaults in place on a raw MBR disk; e2fsck clean, second run changes nothing', async () => {
    const img = copy(fx, 'mbr.raw', 'work-mbr.raw');
    const first = await runSysprep(img, selectOps(undefined, noOpts()), noOpts());
    assert.ok(first.operations.find((r) => r.op === 'machine-id')!.changes.length === 1);
    const [rc, out] = e2fsck(img, fx.partOffset);
    assert.equal(rc, 0, out);
    assert.equal(debugfs(img, fx.partOffset, 'cat /etc/machine-id'), '');
    // /var/log/evil-link -> /etc/hostname: logfiles must not have truncated the target.
    assert.equal(debugfs(img, fx.partOffset, 'cat /etc/hostname'), 'oldhost\n');
    const second = await runSysprep(img, selectOps(undefined, noOpts()), noOpts());
    const changes = second.operations.flatMap((r) => r.changes);
    assert.deepEqual(changes, [], 'idempotent');
  });

  it('edits a qcow2 overlay in place and leaves its backing file alone', async () => {
    const base = copy(fx, 'gpt.qcow2', 'base.qcow2');
    const overlay = path.join(fx.dir, 'overlay.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', overlay], { cwd: fx.dir });
    const baseSum = sha256(base);
    const opts = { ...noOpts(), hostname: 'overlaid' };
    await runSysprep(overlay, selectOps('machine-id', opts), opts);
    assert.equal(sha256(base), baseSum, 'backing file untouched');
    const chk = spawnSync('qemu-img', ['check', overlay], { encoding: 'utf8' });
    assert.equal(chk.status, 0, chk.stdout + chk.stderr);
    const raw = toRaw(overlay);
    const [rc, out] = e2fsck(raw, fx.partOffset);
    assert.equal(rc, 0, out);
    assert.equal(debugfs(raw, fx.partOffset, 'cat /etc/hostname'), 'overlaid\n');
    assert.equal(debugfs(raw, fx.partOffset, 'cat /etc/machine-id'), '');
    // The base still has the old identity.
    const baseRaw = toRaw(base);
    assert.equal(debugfs(baseRaw, fx.partOffset, 'cat /etc/hostname'), 'oldhost\n');
    fs.rmSync(raw); fs.rmSync(baseRaw);
  });

  it('--dry-run reports the changes but leaves the image byte-identical', async () => {
    const img = copy(fx, 'gpt.qcow2', 'dry.qcow2');
    const before = sha256(img);
    const [status, stdout, stderr] = cli(['sysprep', '--dry-run', '--hostname', 'x1', img]);
    assert.equal(status, 0, stderr);
    assert.match(stdout, /dry run/);
    assert.match(stdout, /machine-id: emptied \/etc\/machine-id/);
    assert.match(stdout, /hostname: \/etc\/hostname = x1/);
    assert.equal(sha256(img), before);
  });

  it('refuses a filesystem with an unreplayed journal, naming image and partition, and writes nothing', async () => {
    const raw = copy(fx, 'gpt.raw', 'dirty.raw');
    execFileSync('debugfs', ['-w', '-R', 'feature needs_recovery', `${raw}?offset=${fx.partOffset}`], { stdio: 'ignore', env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` } });
    const img = path.join(fx.dir, 'dirty.qcow2');
    execFileSync('qemu-img', ['convert', '-O', 'qcow2', raw, img]);
    const before = sha256(img);
    await assert.rejects(runSysprep(img, selectOps(undefined, noOpts()), noOpts()), (e: ImgportError) => {
      assert.equal(e.code, 'UNSUPPORTED');
      assert.equal(e.file, img);
      assert.match(e.message, /partition 1/);
      assert.match(e.message, /needs_recovery/);
      return true;
    });
    const [status, , stderr] = cli(['sysprep', img]);
    assert.equal(status, 1);
    assert.match(stderr, new RegExp(`${img.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: partition 1: .*unreplayed journal`));
    assert.equal(sha256(img), before);
    // Reading (inspection) is still allowed: it never writes.
    const g = await openGuest(img);
    assert.match((await g.fs.readText('/etc/os-release'))!, /ID=/);
    await g.close();
    assert.equal(sha256(img), before);
  });

  it('refuses in-place writes to formats without a writer, with a clear message', async () => {
    const img = copy(fx, 'mbr.vmdk', 'ro.vmdk');
    const [status, , stderr] = cli(['sysprep', img]);
    assert.equal(status, 1);
    assert.match(stderr, /writing vmdk images in place is not supported/);
  });

  it('--list marks the defaults; --ops validates names', () => {
    const [status, stdout] = cli(['sysprep', '--list']);
    assert.equal(status, 0);
    assert.match(stdout, /^machine-id\s+\*/m);
    assert.match(stdout, /^disable-firewall\s{2,}[A-Z]/m);
    assert.match(stdout, /^hostname\s+.*\[with --hostname NAME\]/m);
    const [s2, , e2] = cli(['sysprep', '--ops', 'machine-id,bogus', path.join(fx.dir, 'gpt.raw')]);
    assert.equal(s2, 1);
    assert.match(e2, /unknown operation 'bogus'/);
  });
});

describe('selectOps', () => {
  it('starts from the defaults when only removals are given', () => {
    const names = selectOps('-logfiles,-tmp-files', noOpts()).map((o) => o.name);
    assert.ok(names.includes('machine-id'));
    assert.ok(!names.includes('logfiles') && !names.includes('tmp-files') && !names.includes('disable-firewall'));
  });
  it('runs exactly the named ones, plus option-driven ones', () => {
    assert.deepEqual(selectOps('machine-id', { ...noOpts(), hostname: 'a' }).map((o) => o.name), ['machine-id', 'hostname']);
    assert.deepEqual(selectOps('all', noOpts()).map((o) => o.name).includes('disable-firewall'), true);
    assert.throws(() => selectOps('hostname', noOpts()), /needs --hostname/);
  });
});

describe('sysprep on a RHEL-like guest', { skip: missingTools(['mke2fs', 'debugfs', 'e2fsck']).length ? 'e2fsprogs missing' : false }, () => {
  it('keeps sshd-keygen in charge of host keys, enables sshd.service, disables firewalld, edits sysconfig', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-rhel-'));
    try {
      const r = path.join(dir, 'root');
      const mk = (p: string, content: string, mode = 0o644) => {
        fs.mkdirSync(path.dirname(path.join(r, p)), { recursive: true });
        fs.writeFileSync(path.join(r, p), content, { mode });
      };
      mk('etc/os-release', 'ID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.4"\n');
      mk('etc/fstab', '/dev/vda1 / ext4 defaults 0 1\n');
      mk('usr/bin/sh', '');
      mk('usr/lib/systemd/systemd', '', 0o755);
      mk('usr/lib/systemd/system/sshd.service', '[Unit]\nDescription=OpenSSH server daemon\n[Service]\nExecStart=/usr/sbin/sshd -D\n[Install]\nWantedBy=multi-user.target\n');
      mk('usr/lib/systemd/system/sshd-keygen@.service', '[Unit]\nDescription=OpenSSH %i Server Key Generation\n');
      mk('usr/lib/systemd/system/firewalld.service', '[Install]\nWantedBy=multi-user.target\nAlias=dbus-org.fedoraproject.FirewallD1.service\n');
      mk('etc/ssh/ssh_host_rsa_key', 'PRIVATE', 0o600);
      mk('etc/ssh/ssh_host_rsa_key.pub', 'ssh-rsa AAAA');
      mk('etc/sysconfig/network', 'NETWORKING=yes\nHOSTNAME=old.example\n');
      mk('etc/sysconfig/network-scripts/ifcfg-ens3', 'TYPE=Ethernet\nHWADDR=52:54:00:aa:bb:cc\nUUID=1234\nONBOOT=yes\n');
      mk('etc/shadow', 'root:!!:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n', 0o000);
      mk('etc/hosts', '127.0.0.1 localhost\n');
      fs.mkdirSync(path.join(r, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
      fs.symlinkSync('/usr/lib/systemd/system/firewalld.service', path.join(r, 'etc/systemd/system/multi-user.target.wants/firewalld.service'));
      fs.symlinkSync('/usr/lib/systemd/system/firewalld.service', path.join(r, 'etc/systemd/system/dbus-org.fedoraproject.FirewallD1.service'));
      const img = path.join(dir, 'rhel.raw');
      execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', r, img, '16M'], { env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
      const opts: SysprepOptions = { ...noOpts(), hostname: 'new.example', rootPassword: { kind: 'random' } };
      const rep = await runSysprep(img, selectOps('defaults,disable-firewall', opts), opts);
      assert.match(rep.rootPassword!, /^[A-Za-z0-9]{16}$/);
      const keys = rep.operations.find((o) => o.op === 'ssh-hostkeys')!;
      assert.deepEqual(keys.notes, ['sshd-keygen regenerates the host keys at boot']);
      const [rc, out] = e2fsck(img, 0);
      assert.equal(rc, 0, out);
      assert.doesNotMatch(debugfs(img, 0, 'ls /etc/ssh'), /ssh_host/);
      assert.equal(debugfsStat(img, 0, '/etc/systemd/system/imgport-ssh-hostkeys.service'), null);
      assert.match(debugfs(img, 0, 'stat /etc/systemd/system/multi-user.target.wants/sshd.service'), /Fast link dest: "\/usr\/lib\/systemd\/system\/sshd.service"/);
      assert.equal(debugfsStat(img, 0, '/etc/systemd/system/multi-user.target.wants/firewalld.service'), null);
      assert.equal(debugfsStat(img, 0, '/etc/systemd/system/dbus-org.fedoraproject.FirewallD1.service'), null);
      assert.equal(debugfs(img, 0, 'cat /etc/sysconfig/network'), 'NETWORKING=yes\nHOSTNAME=new.example\n');
      assert.equal(debugfs(img, 0, 'cat /etc/sysconfig/network-scripts/ifcfg-ens3'), 'TYPE=Ethernet\nONBOOT=yes\n');
      const shadow = debugfs(img, 0, 'cat /etc/shadow').split('\n');
      const hash = shadow[0]!.split(':')[1]!;
      assert.equal(sha512Crypt(rep.rootPassword!, hash.split('$')[2]!), hash);
      assert.equal(shadow[1], 'bin:*:19000:0:99999:7:::');
      assert.equal(debugfsStat(img, 0, '/etc/shadow')?.mode, 0o000, 'shadow mode kept');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
