import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import crypto from 'node:crypto';
import { openImage } from '../../../../src/engine/block/open.js';
import { openOva, parseOvf } from '../../../../src/engine/formats/ova/index.js';
import { writeOva } from '../../../../src/engine/formats/ova/write.js';
import { ImgportError } from '../../../../src/engine/errors.js';
import { tmp, sh, qemuIo, qemuInfo, assertSameAsQemu } from '../vmdk/util.js';

function errCode(code: string, re?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof ImgportError, `expected an ImgportError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  };
}

const ovfText = (disks: Array<{ id: string; file: string; href: string; capMiB: number }>, name = 'Test VM') => `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References>
${disks.map((d) => `    <File ovf:href="${d.href}" ovf:id="${d.file}"/>`).join('\n')}
  </References>
  <DiskSection>
    <Info>disks</Info>
${disks.map((d) => `    <Disk ovf:capacity="${d.capMiB}" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="${d.id}" ovf:fileRef="${d.file}" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>`).join('\n')}
  </DiskSection>
  <VirtualSystem ovf:id="vm">
    <Info>A VM</Info>
    <Name>${name}</Name>
  </VirtualSystem>
</Envelope>
`;

function sha(algo: string, file: string) { return crypto.createHash(algo).update(fs.readFileSync(file)).digest('hex'); }

/** An OVA built the way ovftool lays it out: ovf, mf, disks (ustar). */
function buildOva(dir: string, ova: string, names: string[], algo = 'sha1') {
  const mf = names.map((n) => `${algo.toUpperCase()}(${n})= ${sha(algo, `${dir}/${n}`)}`).join('\n') + '\n';
  fs.writeFileSync(`${dir}/vm.mf`, mf);
  sh('tar', ['--format=ustar', '-cf', ova, '-C', dir, names[0]!, 'vm.mf', ...names.slice(1)]);
}

function fixture(t: ReturnType<typeof tmp>) {
  const pkg = t.p('pkg');
  fs.mkdirSync(pkg);
  const raw = t.p('d1.raw');
  sh('qemu-img', ['create', '-f', 'raw', raw, '20M']);
  qemuIo(raw, 'raw', ['write -P 0x5a 0 1M', 'write -P 0x3c 7M 300k']);
  sh('qemu-img', ['convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, `${pkg}/disk1.vmdk`]);
  const raw2 = t.p('d2.raw');
  sh('qemu-img', ['create', '-f', 'raw', raw2, '4M']);
  qemuIo(raw2, 'raw', ['write -P 0x77 1M 1M']);
  sh('qemu-img', ['convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw2, `${pkg}/disk2.vmdk`]);
  fs.writeFileSync(`${pkg}/vm.ovf`, ovfText([
    { id: 'vmdisk1', file: 'file1', href: 'disk1.vmdk', capMiB: 20 },
    { id: 'vmdisk2', file: 'file2', href: 'disk2.vmdk', capMiB: 4 },
  ]));
  const ova = t.p('vm.ova');
  buildOva(pkg, ova, ['vm.ovf', 'disk1.vmdk', 'disk2.vmdk']);
  return { pkg, ova };
}

test('reads an OVA in place: envelope, manifest, disks', async () => {
  const t = tmp();
  try {
    const { pkg, ova } = fixture(t);
    assert.deepEqual(sh('tar', ['tf', ova]).trim().split('\n'), ['vm.ovf', 'vm.mf', 'disk1.vmdk', 'disk2.vmdk']);
    const h = await openOva(ova);
    try {
      assert.equal(h.envelope.name, 'Test VM');
      assert.deepEqual(h.disks.map((d) => [d.id, d.capacity, d.file]), [['vmdisk1', 20 << 20, 'disk1.vmdk'], ['vmdisk2', 4 << 20, 'disk2.vmdk']]);
      assert.deepEqual((await h.verifyManifest()).checked.map((c) => c.file), ['vm.ovf', 'disk1.vmdk', 'disk2.vmdk']);
      const d2 = await h.disks[1]!.open();
      try {
        assert.equal(d2.format, 'vmdk');
        await assertSameAsQemu(d2, `${pkg}/disk2.vmdk`, 'vmdk', t.dir);
      } finally { await d2.close(); }
    } finally { await h.close(); }
    // The registry driver: first disk, manifest verified on open.
    const dev = await openImage(ova);
    try {
      assert.equal(dev.virtualSize, 20 << 20);
      await assertSameAsQemu(dev, `${pkg}/disk1.vmdk`, 'vmdk', t.dir);
      assert.ok(dev.describe().humanLines?.some((l) => l.includes('disk1.vmdk')));
    } finally { await dev.close(); }
    process.env.IMGPORT_OVA_DISK = 'vmdisk2';
    try {
      const d = await openImage(ova);
      assert.equal(d.virtualSize, 4 << 20);
      await d.close();
    } finally { delete process.env.IMGPORT_OVA_DISK; }
    // A bare OVF next to its files goes through the policy.
    const bare = await openImage(`${pkg}/vm.ovf`);
    assert.equal(bare.virtualSize, 20 << 20);
    await bare.close();
  } finally { t.cleanup(); }
});

test('a gzip-compressed disk member (ovf:compression="gzip") is read through the gzip driver', async () => {
  const t = tmp();
  try {
    const { pkg } = fixture(t);
    sh('gzip', ['-k', `${pkg}/disk2.vmdk`]);
    fs.writeFileSync(`${pkg}/vm.ovf`, ovfText([{ id: 'vmdisk2', file: 'file2', href: 'disk2.vmdk.gz', capMiB: 4 }]).replace('ovf:href="disk2.vmdk.gz"', 'ovf:href="disk2.vmdk.gz" ovf:compression="gzip"'));
    const ova = t.p('gz.ova');
    buildOva(pkg, ova, ['vm.ovf', 'disk2.vmdk.gz'], 'sha256');
    const dev = await openImage(ova);
    try {
      assert.equal(dev.format, 'vmdk');
      await assertSameAsQemu(dev, `${pkg}/disk2.vmdk`, 'vmdk', t.dir);
    } finally { await dev.close(); }
  } finally { t.cleanup(); }
});

test('manifest mismatch is detected and names the member', async () => {
  const t = tmp();
  try {
    const { ova } = fixture(t);
    const b = fs.readFileSync(ova);
    // Flip a byte inside disk1.vmdk's data (its first grain sits 64 KiB into the member).
    const hdr = b.indexOf(Buffer.from('disk1.vmdk\0'));
    const at = hdr + 512 + 65536 + 100;
    b[at] = b[at]! ^ 0xff;
    const bad = t.p('bad.ova');
    fs.writeFileSync(bad, b);
    await assert.rejects(openImage(bad), errCode('CORRUPT_IMAGE', /manifest mismatch for 'disk1\.vmdk'/));
    const h = await openOva(bad);
    await assert.rejects(h.verifyManifest(), errCode('CORRUPT_IMAGE', /disk1\.vmdk/));
    await h.close();
  } finally { t.cleanup(); }
});

test('hrefs never leave the tar; bad packages are our errors', async () => {
  const t = tmp();
  try {
    const { pkg } = fixture(t);
    // A file with that name exists on the host next to the OVA, but not in the tar.
    fs.copyFileSync(`${pkg}/disk1.vmdk`, t.p('outside.vmdk'));
    const evil = t.p('evil');
    fs.mkdirSync(evil);
    fs.writeFileSync(`${evil}/vm.ovf`, ovfText([{ id: 'd', file: 'f', href: 'outside.vmdk', capMiB: 20 }]));
    fs.copyFileSync(`${pkg}/disk1.vmdk`, `${evil}/disk1.vmdk`);
    const ova = t.p('evil.ova');
    buildOva(evil, ova, ['vm.ovf', 'disk1.vmdk']);
    await assert.rejects(openImage(ova), errCode('CORRUPT_IMAGE', /no member 'outside\.vmdk'/));
    fs.writeFileSync(`${evil}/vm.ovf`, ovfText([{ id: 'd', file: 'f', href: '../../etc/passwd', capMiB: 20 }]));
    buildOva(evil, ova, ['vm.ovf', 'disk1.vmdk']);
    await assert.rejects(openImage(ova), errCode('CORRUPT_IMAGE', /no member/));
    // Bare OVF escaping its directory: refused by the policy.
    await assert.rejects(openImage(`${evil}/vm.ovf`), errCode('UNSAFE_IMAGE'));
    // Capacity larger than the disk holds.
    fs.writeFileSync(`${evil}/vm.ovf`, ovfText([{ id: 'd', file: 'f', href: 'disk1.vmdk', capMiB: 40 }]));
    buildOva(evil, ova, ['vm.ovf', 'disk1.vmdk']);
    await assert.rejects(openImage(ova), errCode('CORRUPT_IMAGE', /declares/));
    // Truncated archive, bad header checksum, entity tricks, broken XML.
    const good = t.p('vm.ova');
    const bytes = fs.readFileSync(good);
    const trunc = t.p('trunc.ova');
    fs.writeFileSync(trunc, bytes.subarray(0, 3000));
    await assert.rejects(openImage(trunc, { format: 'ova' }), errCode('CORRUPT_IMAGE'));
    const badsum = Buffer.from(bytes);
    badsum[2048] ^= 1; // inside the second header (vm.mf), after the small ovf
    const bs = t.p('badsum.ova');
    fs.writeFileSync(bs, badsum);
    await assert.rejects(openImage(bs, { format: 'ova' }), errCode('CORRUPT_IMAGE'));
    assert.throws(() => parseOvf('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><Envelope/>', 'x.ovf'), errCode('CORRUPT_IMAGE', /DOCTYPE/));
    assert.throws(() => parseOvf('<Envelope><References><File ovf:href="a"', 'x.ovf'), errCode('CORRUPT_IMAGE'));
    assert.throws(() => parseOvf('<Envelope><DiskSection><Disk ovf:diskId="a" ovf:capacity="1" ovf:capacityAllocationUnits="byte * parsec"/></DiskSection></Envelope>', 'x.ovf'), errCode('CORRUPT_IMAGE', /Units/));
  } finally { t.cleanup(); }
});

test('writeOva: ovf, vmdk, mf in a tar that qemu-img, tar and sha*sum accept', async () => {
  const t = tmp();
  try {
    const q = t.p('src.qcow2');
    sh('qemu-img', ['create', '-f', 'qcow2', q, '30000128']);
    qemuIo(q, 'qcow2', ['write -P 0x5a 0 2M', 'write -P 0x19 20M 100k']);
    for (const hash of ['sha1', 'sha256'] as const) {
      const src = await openImage(q);
      const out = t.p(`vm-${hash}.ova`);
      const hw = '    <VirtualHardwareSection><Info>custom hardware</Info></VirtualHardwareSection>';
      try {
        await writeOva({ source: src, target: out, name: `web ${hash}`, hash, virtualHardwareXml: hash === 'sha1' ? hw : undefined });
      } finally { await src.close(); }
      const names = sh('tar', ['tf', out]).trim().split('\n');
      assert.deepEqual(names, [`web_${hash}.ovf`, `web_${hash}-disk1.vmdk`, `web_${hash}.mf`]);
      const ex = t.p(`ex-${hash}`);
      fs.mkdirSync(ex);
      sh('tar', ['xf', out, '-C', ex]);
      const vmdk = `${ex}/${names[1]}`;
      const info = qemuInfo(vmdk);
      assert.equal(info.format, 'vmdk');
      assert.equal(info['virtual-size'], 30000128);
      assert.equal(info['format-specific'].data['create-type'], 'streamOptimized');
      assert.match(sh('qemu-img', ['check', vmdk]), /No errors/);
      assert.equal(sh('qemu-img', ['compare', q, vmdk]).trim(), 'Images are identical.');
      const mf = fs.readFileSync(`${ex}/${names[2]}`, 'utf8');
      const tool = hash === 'sha1' ? 'sha1sum' : 'sha256sum';
      const check = mf.trim().split('\n').map((l) => l.replace(/^SHA\d+\((.*)\)= (.*)$/, '$2  $1')).join('\n') + '\n';
      fs.writeFileSync(`${ex}/check`, check);
      assert.match(sh(tool, ['-c', 'check'], ex), /OK/);
      const env = parseOvf(fs.readFileSync(`${ex}/${names[0]}`), 'x');
      assert.equal(env.name, `web ${hash}`);
      assert.equal(env.disks[0]!.capacity, 30000128);
      assert.equal(env.files[0]!.size, fs.statSync(vmdk).size);
      if (hash === 'sha1') assert.match(fs.readFileSync(`${ex}/${names[0]}`, 'utf8'), /custom hardware/);
      // Round trip through our reader, manifest included.
      const h = await openOva(out);
      assert.equal((await h.verifyManifest()).checked.length, 2);
      const d = await h.disks[0]!.open();
      await assertSameAsQemu(d, q, 'qcow2', t.dir);
      await d.close();
      await h.close();
    }
  } finally { t.cleanup(); }
});
