// The OVF descriptor (DMTF DSP0243): the parts the engine needs (References, DiskSection,
// VirtualSystem name) parsed with fast-xml-parser; the whole envelope is kept for the
// migration code. Also the manifest (.mf) lines and the envelope we write.

import { XMLParser } from 'fast-xml-parser';
import { CorruptImage } from '../../errors.js';

export const MAX_OVF_BYTES = 8 * 1024 * 1024;

export interface OvfFile { id: string; href: string; size?: number; compression?: string }
export interface OvfDisk {
  diskId: string;
  fileRef?: string;
  /** Bytes. */
  capacity: number;
  populatedSize?: number;
  format?: string;
}
export interface OvfEnvelope {
  files: OvfFile[];
  disks: OvfDisk[];
  /** VirtualSystem name (or id). */
  name?: string;
  /** The whole parsed document (namespace prefixes removed, attributes as '@_name'). */
  raw: Record<string, unknown>;
}

const asArray = <T>(x: T | T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);

/** "byte", "byte * 2^30", "byte * 1024^3", "GB", "MegaBytes"... → multiplier. */
export function allocationUnits(units: string | undefined, file: string): number {
  if (units === undefined || units.trim() === '') return 1;
  const u = units.replace(/\s+/g, '').toLowerCase();
  let m: RegExpExecArray | null;
  if (u === 'byte' || u === 'bytes') return 1;
  if ((m = /^byte\*(\d+)\^(\d+)$/.exec(u))) {
    const v = Number(m[1]) ** Number(m[2]);
    if (Number.isSafeInteger(v)) return v;
  }
  if ((m = /^byte\*(\d+)$/.exec(u))) return Number(m[1]);
  const named: Record<string, number> = { kb: 1024, kilobytes: 1024, mb: 2 ** 20, megabytes: 2 ** 20, gb: 2 ** 30, gigabytes: 2 ** 30, tb: 2 ** 40 };
  if (named[u] !== undefined) return named[u]!;
  throw new CorruptImage(`OVF capacityAllocationUnits '${units}' not understood`, { file });
}

function num(v: unknown, what: string, file: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new CorruptImage(`OVF ${what} '${String(v)}' is not a size`, { file });
  return n;
}

export function parseOvf(xml: Uint8Array | string, file: string): OvfEnvelope {
  const text = typeof xml === 'string' ? xml : Buffer.from(xml).toString('utf8');
  if (text.length > MAX_OVF_BYTES) throw new CorruptImage(`OVF descriptor larger than ${MAX_OVF_BYTES} bytes`, { file });
  // DOCTYPE is where entity expansion attacks live; OVF never needs one.
  if (/<!DOCTYPE/i.test(text)) throw new CorruptImage('OVF descriptor has a DOCTYPE, which is not allowed', { file });
  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@_', removeNSPrefix: true, parseAttributeValue: false, parseTagValue: false, processEntities: true });
  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(text, true) as Record<string, unknown>;
  } catch (err) {
    throw new CorruptImage(`OVF descriptor is not well-formed XML: ${(err as Error).message}`, { file, cause: err });
  }
  const env = doc.Envelope as Record<string, any> | undefined;
  if (!env || typeof env !== 'object') throw new CorruptImage('OVF descriptor has no Envelope element', { file });
  const files: OvfFile[] = asArray(env.References?.File).map((f: any) => {
    if (!f['@_href'] || !f['@_id']) throw new CorruptImage('OVF References/File without href or id', { file });
    return { id: String(f['@_id']), href: String(f['@_href']), size: num(f['@_size'], 'file size', file), compression: f['@_compression'] };
  });
  const disks: OvfDisk[] = asArray(env.DiskSection?.Disk ?? env.Section?.Disk).map((d: any) => {
    const cap = num(d['@_capacity'], 'disk capacity', file);
    if (cap === undefined) throw new CorruptImage(`OVF disk '${d['@_diskId']}' has no capacity`, { file });
    const total = cap * allocationUnits(d['@_capacityAllocationUnits'], file);
    if (!Number.isSafeInteger(total)) throw new CorruptImage(`OVF disk '${d['@_diskId']}' capacity is too large`, { file });
    return { diskId: String(d['@_diskId'] ?? ''), fileRef: d['@_fileRef'], capacity: total, populatedSize: num(d['@_populatedSize'], 'populatedSize', file), format: d['@_format'] };
  });
  const vs = asArray(env.VirtualSystem ?? env.VirtualSystemCollection?.VirtualSystem)[0] as any;
  const name = vs ? (typeof vs.Name === 'string' ? vs.Name : vs['@_id']) : undefined;
  return { files, disks, name, raw: doc };
}

export interface ManifestEntry { algo: 'sha1' | 'sha256' | 'sha512'; file: string; digest: string; line: number }

export function parseManifest(text: string, file: string): ManifestEntry[] {
  const out: ManifestEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.trim();
    if (l === '') continue;
    const m = /^(SHA1|SHA256|SHA512)\((.+)\)\s*=\s*([0-9a-fA-F]+)$/.exec(l);
    if (!m) throw new CorruptImage(`manifest line ${i + 1} is not 'SHAn(file)= digest'`, { file });
    const algo = m[1]!.toLowerCase() as ManifestEntry['algo'];
    const want = { sha1: 40, sha256: 64, sha512: 128 }[algo];
    if (m[3]!.length !== want) throw new CorruptImage(`manifest line ${i + 1}: ${m[1]} digest has ${m[3]!.length} hex digits`, { file });
    out.push({ algo, file: m[2]!, digest: m[3]!.toLowerCase(), line: i + 1 });
  }
  return out;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export interface EnvelopeSpec {
  name: string;
  diskFile: string;
  /** Fixed-width placeholders are patched once the disk is written. */
  fileSize: string;
  populatedSize: string;
  capacity: number;
  virtualHardwareXml?: string;
  osId?: number;
  cpus?: number;
  memoryMiB?: number;
  adapter?: 'lsilogic' | 'ide';
}

/** A minimal, valid envelope: one disk, one VirtualSystem with OS and hardware sections. */
export function buildEnvelope(s: EnvelopeSpec): string {
  const hw = s.virtualHardwareXml ?? defaultHardware(s);
  return `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="${esc(s.diskFile)}" ovf:id="file1" ovf:size="${s.fileSize}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="${s.capacity}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" ovf:populatedSize="${s.populatedSize}"/>
  </DiskSection>
  <VirtualSystem ovf:id="${esc(s.name)}">
    <Info>A virtual machine</Info>
    <Name>${esc(s.name)}</Name>
    <OperatingSystemSection ovf:id="${s.osId ?? 1}">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
${hw}
  </VirtualSystem>
</Envelope>
`;
}

function defaultHardware(s: EnvelopeSpec): string {
  const scsi = (s.adapter ?? 'lsilogic') === 'lsilogic';
  return `    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>${esc(s.name)}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-07</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>${s.cpus ?? 1} virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>${s.cpus ?? 1}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>${s.memoryMiB ?? 1024}MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>${s.memoryMiB ?? 1024}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>${scsi ? 'SCSI Controller' : 'IDE Controller'}</rasd:Description>
        <rasd:ElementName>${scsi ? 'SCSI Controller 0' : 'IDE Controller 0'}</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
${scsi ? '        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>\n        <rasd:ResourceType>6</rasd:ResourceType>' : '        <rasd:ResourceType>5</rasd:ResourceType>'}
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>`;
}
