// What a sysprep operation sees and how it reports what it did.
import type { ExtFs } from '../fs/ext.js';

export interface SysprepOptions {
  hostname?: string;
  /** --root-password password:XXX | random */
  rootPassword?: { kind: 'password'; value: string } | { kind: 'random' };
  /** --ssh-inject USER:string:KEY (repeatable) */
  sshInject: Array<{ user: string; key: string }>;
  /** --write PATH:CONTENT (repeatable) */
  write: Array<{ path: string; content: string }>;
  /** --firstboot SCRIPT (repeatable): script name and its contents, read on the host. */
  firstboot: Array<{ name: string; content: string }>;
}

export interface GuestFacts {
  /** os-release ID ("debian", "ubuntu", "rhel", ...). */
  id: string;
  /** ID plus ID_LIKE words. */
  family: Set<string>;
  /** The guest boots with systemd (its binary is there). */
  systemd: boolean;
}

export interface OpContext {
  fs: ExtFs;
  guest: GuestFacts;
  opts: SysprepOptions;
  /** Records a change made (or, in a dry run, that would have been made). */
  changed(what: string): void;
  /** Records an observation that changed nothing (cloud-init report, skipped steps). */
  note(what: string): void;
  /** Values an operation hands back to the caller (e.g. the generated root password). */
  results: Record<string, unknown>;
}

export interface SysprepOp {
  name: string;
  description: string;
  /** Runs unless deselected. */
  defaultEnabled: boolean;
  /** The command-line option that enables this operation, for customisation ops. */
  option?: string;
  /** Whether the option it depends on was given. */
  requested?(opts: SysprepOptions): boolean;
  run(ctx: OpContext): Promise<void>;
}
