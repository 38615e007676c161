import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { PtyConsoleBackend, SocketConsoleBackend, StreamConsoleBackend } from './host-console.js';

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

describe('console host sides', () => {
  it('a stream pair (stdio) carries bytes both ways', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const backend = new StreamConsoleBackend(input, output);
    const got: string[] = [];
    backend.onData((b) => got.push(text(b)));
    input.write('from the user');
    backend.write(new TextEncoder().encode('from the guest'));
    await new Promise((r) => setImmediate(r));
    expect(got.join('')).toBe('from the user');
    expect(String(output.read())).toBe('from the guest');
    backend.close();
  });

  it('a Unix socket: one client at a time, output dropped while nobody is attached', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'vt-console-'));
    const backend = await SocketConsoleBackend.listen(path.join(dir, 'console.sock'));
    backend.write(new Uint8Array(5));
    expect(backend.dropped).toBe(5);
    const client = connect(backend.path);
    await new Promise((r) => client.once('connect', r));
    await new Promise((r) => setTimeout(r, 20));
    const got: string[] = [];
    backend.onData((b) => got.push(text(b)));
    const received = new Promise<string>((resolve) => client.once('data', (d) => resolve(String(d))));
    backend.write(new TextEncoder().encode('login: '));
    expect(await received).toBe('login: ');
    client.write('root\n');
    await new Promise((r) => setTimeout(r, 20));
    expect(got.join('')).toBe('root\n');
    client.destroy();
    backend.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a pty: the user on the slave side talks to the guest', async () => {
    const backend = new PtyConsoleBackend();
    expect(backend.path).toMatch(/^\/dev\/pts\/\d+$/);
    const got: string[] = [];
    backend.onData((b) => got.push(text(b)));
    const slave = openSync(backend.path, 'r+');
    writeSync(slave, 'typed\n');
    for (let i = 0; i < 100 && !got.join('').includes('typed'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(got.join('')).toContain('typed');
    backend.write(new TextEncoder().encode('guest says hi\n'));
    const buffer = Buffer.alloc(64);
    const n = readSync(slave, buffer);
    expect(buffer.subarray(0, n).toString()).toContain('guest says hi');
    closeSync(slave);
    backend.close();
  });
});
