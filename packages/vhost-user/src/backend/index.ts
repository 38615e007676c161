export { VhostUserBackend, BACKEND_PROTOCOL_FEATURES, type BackendOptions } from './backend.js';
export { serveConnection, type ConnectionEnd, type ConnectionOptions } from './connection.js';
export { MemoryTable } from './memory-table.js';
export { EpollWaiter } from './epoll-waiter.js';
