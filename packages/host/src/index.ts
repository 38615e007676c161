export * from './constants.js';
export { HostError, errnoName, type HostErrorCode, type HostErrorContext } from './errors.js';
export { closeFd, readFd, writeFd, ftruncateFd } from './fd.js';
export { createMemfd } from './memfd.js';
export { Mapping } from './mapping.js';
export { EventFd } from './eventfd.js';
export { Epoll, type EpollEvent } from './epoll.js';
export { UnixSocket, UnixListener, type ReceivedMessage } from './unix-socket.js';
export { Tap, type TapOptions } from './tap.js';
