// Typings for the parts of the npm `ext2fs` package (WASM libext2fs) we use; the
// package ships none.
declare module 'ext2fs' {
  export interface Ext2Disk {
    read(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<{ bytesRead: number; buffer: Buffer }>;
    write(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<{ bytesWritten: number; buffer: Buffer }>;
    flush(): Promise<void>;
    discard(offset: number, length: number): Promise<void>;
  }
  export interface Ext2Stats {
    mode: number; nlink: number; uid: number; gid: number; size: number; ino: number; blocks: number;
    mtime: Date;
    isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean;
  }
  export interface Ext2FileHandle { readonly fd: number }
  export interface Ext2Promises {
    open(path: string, flags: number | string, mode?: number): Promise<Ext2FileHandle>;
    close(fd: number): Promise<void>;
    read(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
    write(fd: number, buffer: Buffer, offset: number, length: number, position: number | null): Promise<{ bytesWritten: number }>;
    fstat(fd: number): Promise<Ext2Stats>;
    lstat(path: string): Promise<Ext2Stats>;
    stat(path: string): Promise<Ext2Stats>;
    readdir(path: string): Promise<string[]>;
    readlink(path: string): Promise<string>;
    unlink(path: string): Promise<void>;
    rmdir(path: string): Promise<void>;
    mkdir(path: string, mode?: number): Promise<void>;
    symlink(target: string, path: string): Promise<void>;
    rename(from: string, to: string): Promise<void>;
    chmod(path: string, mode: number): Promise<void>;
    lchmod(path: string, mode: number): Promise<void>;
    chown(path: string, uid: number, gid: number): Promise<void>;
    lchown(path: string, uid: number, gid: number): Promise<void>;
    fchmod(fd: number, mode: number): Promise<void>;
    fchown(fd: number, uid: number, gid: number): Promise<void>;
    trim(): Promise<void>;
    constants: Record<string, number>;
  }
  export interface Ext2Fs { promises: Ext2Promises }
  export function mount(disk: Ext2Disk, offset?: number): Promise<Ext2Fs>;
  export function umount(fs: Ext2Fs): Promise<void>;
  const ext2fs: { mount: typeof mount; umount: typeof umount };
  export default ext2fs;
}
