import { createRequire } from 'node:module';
import koffi, { type LibraryHandle } from 'koffi';
import { HostError } from './errors.js';

/**
 * The libc functions this package calls, bound lazily on first use so that importing the package
 * on a platform without them fails only when a primitive is used (with UNSUPPORTED).
 */
export interface Libc {
  memfd_create(name: string, flags: number): number;
  ftruncate(fd: number, length: number): number;
  mmap(addr: null, length: number, prot: number, flags: number, fd: number, offset: number): unknown;
  munmap(addr: unknown, length: number): number;
  close(fd: number): number;
  read(fd: number, buffer: Uint8Array, count: number): number;
  write(fd: number, buffer: Uint8Array, count: number): number;
  eventfd(initval: number, flags: number): number;
  epoll_create1(flags: number): number;
  epoll_ctl(epfd: number, op: number, fd: number, event: Uint8Array | null): number;
  epoll_wait(epfd: number, events: Uint8Array, maxevents: number, timeout: number): number;
  socket(domain: number, type: number, protocol: number): number;
  socketpair(domain: number, type: number, protocol: number, fds: Int32Array): number;
  bind(fd: number, addr: Uint8Array, length: number): number;
  listen(fd: number, backlog: number): number;
  accept4(fd: number, addr: null, length: null, flags: number): number;
  connect(fd: number, addr: Uint8Array, length: number): number;
  sendmsg(fd: number, message: unknown, flags: number): number;
  recvmsg(fd: number, message: unknown, flags: number): number;
  open(path: string, flags: number, mode: number): number;
  ioctl(fd: number, request: number, ...args: unknown[]): number;
  fcntl(fd: number, cmd: number, ...args: unknown[]): number;
  shutdown(fd: number, how: number): number;
  posix_openpt(flags: number): number;
  grantpt(fd: number): number;
  unlockpt(fd: number): number;
  ptsname_r(fd: number, buffer: Uint8Array, length: number): number;
}

/** Asynchronous (thread-pool) variants of the calls that may block. */
export interface LibcAsync {
  read(fd: number, buffer: Uint8Array, count: number, callback: (error: unknown, result: number) => void): void;
  epoll_wait(epfd: number, events: Uint8Array, maxevents: number, timeout: number, callback: (error: unknown, result: number) => void): void;
  accept4(fd: number, addr: null, length: null, flags: number, callback: (error: unknown, result: number) => void): void;
  recvmsg(fd: number, message: unknown, flags: number, callback: (error: unknown, result: number) => void): void;
}

let bound: { libc: Libc; async: LibcAsync } | undefined;

function bind(): { libc: Libc; async: LibcAsync } {
  if (bound) return bound;
  if (process.platform !== 'linux') throw new HostError('UNSUPPORTED', `Linux primitives are not available on ${process.platform}`);
  let lib: LibraryHandle;
  try {
    lib = koffi.load('libc.so.6');
  } catch (error) {
    throw new HostError('UNSUPPORTED', 'cannot load libc.so.6', {}, undefined, { cause: error });
  }
  const f = (signature: string) => lib.func(signature);
  const fns = {
    memfd_create: f('int memfd_create(const char *name, unsigned int flags)'),
    ftruncate: f('int ftruncate(int fd, int64_t length)'),
    mmap: f('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
    munmap: f('int munmap(void *addr, size_t length)'),
    close: f('int close(int fd)'),
    read: f('intptr_t read(int fd, _Out_ uint8_t *buf, size_t count)'),
    write: f('intptr_t write(int fd, const uint8_t *buf, size_t count)'),
    eventfd: f('int eventfd(unsigned int initval, int flags)'),
    epoll_create1: f('int epoll_create1(int flags)'),
    epoll_ctl: f('int epoll_ctl(int epfd, int op, int fd, uint8_t *event)'),
    epoll_wait: f('int epoll_wait(int epfd, _Out_ uint8_t *events, int maxevents, int timeout)'),
    socket: f('int socket(int domain, int type, int protocol)'),
    socketpair: f('int socketpair(int domain, int type, int protocol, _Out_ int32_t *fds)'),
    bind: f('int bind(int fd, const uint8_t *addr, uint32_t length)'),
    listen: f('int listen(int fd, int backlog)'),
    accept4: f('int accept4(int fd, void *addr, void *length, int flags)'),
    connect: f('int connect(int fd, const uint8_t *addr, uint32_t length)'),
    sendmsg: f('intptr_t sendmsg(int fd, void *message, int flags)'),
    recvmsg: f('intptr_t recvmsg(int fd, void *message, int flags)'),
    open: f('int open(const char *path, int flags, uint32_t mode)'),
    ioctl: f('int ioctl(int fd, unsigned long request, ...)'),
    fcntl: f('int fcntl(int fd, int cmd, ...)'),
    shutdown: f('int shutdown(int fd, int how)'),
    posix_openpt: f('int posix_openpt(int flags)'),
    grantpt: f('int grantpt(int fd)'),
    unlockpt: f('int unlockpt(int fd)'),
    ptsname_r: f('int ptsname_r(int fd, _Out_ uint8_t *buffer, size_t length)'),
  };
  const libc = fns as unknown as Libc;
  const asyncFns = {
    read: fns.read.async,
    epoll_wait: fns.epoll_wait.async,
    accept4: fns.accept4.async,
    recvmsg: fns.recvmsg.async,
  };
  bound = { libc, async: asyncFns };
  return bound;
}

/** The bound libc (throws HostError UNSUPPORTED off Linux). */
export function libc(): Libc {
  return bind().libc;
}

/** Thread-pool variants of blocking calls. */
export function libcAsync(): LibcAsync {
  return bind().async;
}

/** The calling thread's errno after a failed call. */
export function errno(): number {
  return koffi.errno();
}

export { koffi };

/**
 * Absolute path of the koffi module this package uses, for code that must load it in a thread of
 * its own (a worker evaluated from source cannot resolve our dependencies by name).
 */
export function koffiModulePath(): string {
  return createRequire(import.meta.url).resolve('koffi');
}
