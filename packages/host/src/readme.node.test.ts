import { GuestMemory, GuestRegion } from '@virtio-ts/memory';
import { expect, it } from 'vitest';
import { EPOLLIN, Epoll, EventFd, Mapping, UnixSocket, closeFd, createMemfd } from './index.js';

it('README example runs', () => {
  const fd = createMemfd('guest-ram', 1 << 20);
  const ram = Mapping.map(fd, 1 << 20);
  const memory = new GuestMemory([new GuestRegion({ guestAddress: 0, size: 1 << 20, buffer: ram.buffer })]);
  memory.writeU32(0x100, 42);
  const [frontend, backend] = UnixSocket.pair();
  frontend.send(new Uint8Array([5]), [fd]);
  const { fds } = backend.receive();
  const theirs = Mapping.map(fds[0]!, 4096);
  expect(new DataView(theirs.buffer).getUint32(0x100, true)).toBe(42);
  const kick = EventFd.create();
  const epoll = new Epoll();
  epoll.add(kick.fd, EPOLLIN, 0);
  kick.signal();
  expect(epoll.wait(100)).toEqual([{ events: EPOLLIN, data: 0 }]);
  theirs.unmap();
  ram.unmap();
  closeFd(fds[0]!);
  closeFd(fd);
  frontend.close();
  backend.close();
  kick.close();
  epoll.close();
});
