import { expect, it } from 'vitest';
import { MessageReader, decodeRequest, encodeReply, encodeRequest } from './index.js';

it('README example runs', () => {
  const { bytes, fds } = encodeRequest({ type: 'SET_VRING_KICK', index: 0, fd: 42 });
  const reader = new MessageReader();
  reader.push(bytes.subarray(0, 5), fds);
  reader.push(bytes.subarray(5));
  const framed = reader.next()!;
  const { message } = decodeRequest(framed.header, framed.payload, framed.fds);
  expect(message).toEqual({ type: 'SET_VRING_KICK', index: 0, fd: 42 });
  expect(encodeReply('GET_FEATURES', { kind: 'u64', value: 1n << 32n }).bytes.length).toBe(20);
});
