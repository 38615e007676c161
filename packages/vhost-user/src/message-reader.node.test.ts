import { EventFd, UnixSocket, closeFd } from '@virtio-ts/host';
import { expect, it } from 'vitest';
import { MessageReader, decodeRequest, encodeRequest } from './index.js';

it('regression: fds of a message sent after an fd-less one stay with their message (read by bytesWanted)', () => {
  const [frontend, backend] = UnixSocket.pair();
  const call = EventFd.create();
  // Two sendmsg calls, as QEMU makes them: SET_STATUS (no fd), then SET_VRING_CALL (one fd).
  const a = encodeRequest({ type: 'SET_STATUS', status: 15 });
  const b = encodeRequest({ type: 'SET_VRING_CALL', index: 0, fd: call.fd });
  frontend.send(a.bytes, a.fds);
  frontend.send(b.bytes, b.fds);
  const reader = new MessageReader();
  const decoded = [];
  while (decoded.length < 2) {
    const got = backend.tryReceive(reader.bytesWanted());
    if (got === null) break;
    reader.push(got.data, got.fds);
    for (let framed = reader.next(); framed; framed = reader.next()) decoded.push(decodeRequest(framed.header, framed.payload, framed.fds).message);
  }
  expect(decoded[0]).toEqual({ type: 'SET_STATUS', status: 15 });
  expect(decoded[1]).toMatchObject({ type: 'SET_VRING_CALL', index: 0 });
  const received = (decoded[1] as { fd: number }).fd;
  expect(received).not.toBe(call.fd);
  closeFd(received);
  call.close();
  frontend.close();
  backend.close();
});
