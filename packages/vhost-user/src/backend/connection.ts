import { HostError, closeFd, type UnixSocket } from '@virtio-ts/host';
import type { VirtioDevice } from '@virtio-ts/device';
import { VhostUserError } from '../errors.js';
import { decodeRequest } from '../message.js';
import { MessageReader } from '../message-reader.js';
import { VhostUserBackend } from './backend.js';
import { EpollWaiter } from './epoll-waiter.js';

const CONTROL = 0;

export interface ConnectionOptions {
  readonly device: VirtioDevice;
  readonly log?: (message: string) => void;
  readonly maxMemSlots?: number;
  /** How long stopping rings waits for in-flight requests (default 30 s). */
  readonly drainTimeoutMs?: number;
}

/** Why a connection ended. */
export interface ConnectionEnd {
  /** 'closed': the front-end hung up. 'error': a protocol error closed it (see `error`). */
  readonly reason: 'closed' | 'error';
  readonly error?: Error;
  readonly messages: number;
  /** Kicks served per vring. */
  readonly kicks: readonly number[];
}

/**
 * Serves one vhost-user connection until the front-end hangs up or breaks the protocol: messages
 * in order, kicks as they come. On the way out every ring is drained and stopped, the device is
 * reset, guest memory is unmapped and every fd is closed — the device (and its image) stays open
 * for the next connection.
 */
export async function serveConnection(socket: UnixSocket, options: ConnectionOptions): Promise<ConnectionEnd> {
  const log = options.log ?? (() => undefined);
  const waiter = new EpollWaiter();
  const kickFds = new Map<number, number>();
  const backend = new VhostUserBackend({
    device: options.device,
    log,
    maxMemSlots: options.maxMemSlots,
    drainTimeoutMs: options.drainTimeoutMs,
    onKickFd: (index, kick) => {
      const old = kickFds.get(index);
      if (old !== undefined) waiter.unwatch(old);
      kickFds.delete(index);
      if (kick) {
        waiter.watch(kick.fd, index + 1);
        kickFds.set(index, kick.fd);
      }
    },
  });
  const reader = new MessageReader();
  let messages = 0;
  let end: ConnectionEnd | undefined;
  waiter.watch(socket.fd, CONTROL);
  try {
    // The control socket may already hold data that arrived before we watched it (edge-triggered).
    let ready = [CONTROL];
    while (end === undefined) {
      for (const id of ready) {
        if (id === CONTROL) {
          end = await drainControl();
          if (end) break;
        } else {
          const ring = backend.vring(id - 1, 'VRING_KICK');
          ring.kick?.consume();
          backend.kick(ring.index);
        }
      }
      if (end) break;
      ready = await waiter.wait();
    }
  } finally {
    await backend.close();
    await waiter.close();
    for (const fd of reader.drainFds()) safeClose(socket, fd);
    socket.close();
  }
  return end;

  async function drainControl(): Promise<ConnectionEnd | undefined> {
    for (;;) {
      let received;
      try {
        received = socket.tryReceive(reader.bytesWanted());
      } catch (error) {
        return { reason: 'error', error: error as Error, messages, kicks: backend.kickCounts };
      }
      if (received === null) return undefined;
      if (received.end) return { reason: 'closed', messages, kicks: backend.kickCounts };
      let framed;
      try {
        reader.push(received.data, received.fds);
        while ((framed = reader.next()) !== null) {
          messages++;
          let request;
          try {
            request = decodeRequest(framed.header, framed.payload, framed.fds);
          } catch (error) {
            for (const fd of framed.fds) safeClose(socket, fd);
            throw error;
          }
          const reply = await backend.handle(request);
          if (reply) socket.send(reply.bytes, reply.fds);
        }
      } catch (error) {
        if (VhostUserError.isInstance(error) || HostError.isInstance(error)) {
          log(`vhost-user: closing the connection: ${error.message}`);
          return { reason: 'error', error, messages, kicks: backend.kickCounts };
        }
        throw error;
      }
    }
  }
}

function safeClose(_socket: UnixSocket, fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // already closed
  }
}
