import { ConsoleDevice, MemoryConsoleBackend } from '@virtio-ts/backends';
import { createPciHarness } from '@virtio-ts/pci/testing';
import { describe, expect, it } from 'vitest';
import { DriverError } from '../errors.js';
import { ConsoleDriver } from './console-driver.js';

const tick = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setTimeout(resolve, 0));
};
const text = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

describe('console driver ↔ console device end to end (virtio-pci)', () => {
  it('README example: single port echo — host input reaches the guest, which writes it back', async () => {
    const backend = new MemoryConsoleBackend();
    const device = new ConsoleDevice({ ports: [{ backend }], size: { cols: 80, rows: 25 } });
    const driver = ConsoleDriver.init(createPciHarness(device).transport);
    expect(driver.multiport).toBe(false);
    expect(driver.size).toEqual({ cols: 80, rows: 25 });
    driver.onData(0, (bytes) => void driver.write(0, bytes));
    backend.input('echo me');
    await tick();
    expect(backend.text()).toBe('echo me');
    await driver.write(0, text(' and this'));
    expect(backend.text()).toBe('echo me and this');
  });

  it('input longer than the receive buffers arrives complete and in order', async () => {
    const backend = new MemoryConsoleBackend();
    const driver = ConsoleDriver.init(createPciHarness(new ConsoleDevice({ ports: [{ backend }] })).transport, { receiveBufferSize: 16, receiveBuffers: 2 });
    const got: string[] = [];
    driver.onData(0, (bytes) => got.push(decode(bytes)));
    const long = 'x'.repeat(100) + 'END';
    backend.input(long);
    await tick(20);
    expect(got.join('')).toBe(long);
  });

  it('config change notification updates the console size (VIRTIO_CONSOLE_F_SIZE)', async () => {
    const device = new ConsoleDevice({ ports: [{ backend: new MemoryConsoleBackend() }], size: { cols: 80, rows: 25 } });
    const driver = ConsoleDriver.init(createPciHarness(device).transport);
    device.resize(100, 40);
    await tick();
    expect(driver.size).toEqual({ cols: 100, rows: 40 });
  });

  it('emergency write reaches port 0 through emerg_wr', () => {
    const backend = new MemoryConsoleBackend();
    const driver = ConsoleDriver.init(createPciHarness(new ConsoleDevice({ ports: [{ backend }] })).transport);
    driver.emergencyWrite(0x21);
    expect(backend.text()).toBe('!');
  });

  it('multiport: the handshake announces ports with names and console role; echo on port 1 after PORT_OPEN', async () => {
    const serial = new MemoryConsoleBackend();
    const agent = new MemoryConsoleBackend();
    const device = new ConsoleDevice({ ports: [{ backend: serial }, { backend: agent, name: 'org.qemu.guest_agent.0' }], maxNrPorts: 4, size: { cols: 120, rows: 50 } });
    const driver = ConsoleDriver.init(createPciHarness(device).transport);
    expect(driver.multiport).toBe(true);
    expect(driver.maxNrPorts).toBe(4);
    const port1 = await driver.whenPort(1);
    await tick();
    expect(driver.portIds().sort()).toEqual([0, 1]);
    expect(driver.port(0)).toMatchObject({ console: true, guestOpen: true, hostOpen: true });
    expect(port1).toMatchObject({ name: 'org.qemu.guest_agent.0', console: false, hostOpen: true, guestOpen: false });
    expect(driver.size).toEqual({ cols: 120, rows: 50 });
    expect(device.ports[1]!.ready).toBe(true);
    // Input for port 1 waits until the guest opens it.
    agent.input('{"execute":"guest-ping"}');
    const seen: string[] = [];
    driver.onData(1, (bytes) => {
      seen.push(decode(bytes));
      void driver.write(1, bytes);
    });
    await tick();
    expect(seen).toEqual([]);
    await driver.setOpen(1, true);
    await tick();
    expect(seen.join('')).toBe('{"execute":"guest-ping"}');
    expect(agent.text()).toBe('{"execute":"guest-ping"}');
    expect(serial.text()).toBe('');
    // The console port works at the same time.
    driver.onData(0, (bytes) => void driver.write(0, bytes));
    serial.input('login: ');
    await tick();
    expect(serial.text()).toBe('login: ');
    // Host-side close and resize reach the driver.
    device.setHostOpen(1, false);
    device.resize(90, 30);
    await tick();
    expect(driver.port(1)!.hostOpen).toBe(false);
    expect(driver.size).toEqual({ cols: 90, rows: 30 });
    expect(device.metrics.faults).toMatchObject({ UNKNOWN_PORT: 0, UNEXPECTED_EVENT: 0, SHORT_CONTROL_MESSAGE: 0 });
  });

  it('multiport over packed virtqueues (§2.8): handshake and echo', async () => {
    const agent = new MemoryConsoleBackend();
    const device = new ConsoleDevice({ ports: [{ backend: new MemoryConsoleBackend() }, { backend: agent, name: 'agent' }], packed: true });
    const driver = ConsoleDriver.init(createPciHarness(device).transport);
    expect(driver.features & (1n << 34n)).not.toBe(0n);
    await driver.whenPort(1);
    await driver.setOpen(1, true);
    driver.onData(1, (bytes) => void driver.write(1, bytes));
    agent.input('packed');
    await tick();
    expect(agent.text()).toBe('packed');
  });

  it('port hot-plug: a port added at run time appears in the driver and works; a removed one disappears', async () => {
    const device = new ConsoleDevice({ ports: [{ backend: new MemoryConsoleBackend() }, { backend: new MemoryConsoleBackend() }], maxNrPorts: 3 });
    const driver = ConsoleDriver.init(createPciHarness(device).transport);
    await driver.whenPort(1);
    const hot = new MemoryConsoleBackend();
    const id = device.addPort({ backend: hot, name: 'hot-plugged' });
    const info = await driver.whenPort(id);
    await tick();
    expect(info.name).toBe('hot-plugged');
    await driver.write(id, text('late'));
    expect(hot.text()).toBe('late');
    device.removePort(1);
    await tick();
    expect(driver.portIds().sort()).toEqual([0, 2]);
  });

  it('writing to a port that does not exist is INVALID_ARGUMENT', async () => {
    const driver = ConsoleDriver.init(createPciHarness(new ConsoleDevice({ ports: [{ backend: new MemoryConsoleBackend() }] })).transport);
    await expect(driver.write(3, text('x'))).rejects.toThrow(DriverError);
  });

  it('multiport can be declined: the device then acts as a single port', async () => {
    const serial = new MemoryConsoleBackend();
    const device = new ConsoleDevice({ ports: [{ backend: serial }, { backend: new MemoryConsoleBackend() }] });
    const driver = ConsoleDriver.init(createPciHarness(device).transport, { multiport: false });
    expect(driver.multiport).toBe(false);
    await driver.write(0, text('plain'));
    expect(serial.text()).toBe('plain');
  });
});
