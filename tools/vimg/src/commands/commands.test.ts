import { describe, expect, it } from 'vitest';
import { runVimg } from '../run.js';
import { MemoryHost, MemoryRawDisk } from '../testing/memory-host.js';

async function vimg(host: MemoryHost, ...argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const status = await runVimg(argv, { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) }, host);
  return { status, stdout, stderr };
}

function disk(size: number, writes: [number, number, number][] = []): MemoryRawDisk {
  const d = new MemoryRawDisk(size);
  for (const [offset, length, value] of writes) void d.write(offset, new Uint8Array(length).fill(value));
  return d;
}

describe('vimg compare (exit 0 equal, 1 differ, 2 error)', () => {
  it('equal images: "Images are identical." and 0', async () => {
    const host = new MemoryHost();
    host.add('a', disk(1 << 20, [[4096, 100, 7]]));
    host.add('b', disk(1 << 20, [[4096, 100, 7]]));
    expect(await vimg(host, 'compare', 'a', 'b')).toEqual({ status: 0, stdout: 'Images are identical.\n', stderr: '' });
  });

  it('a difference: "Content mismatch at offset N!" at the sector, and 1', async () => {
    const host = new MemoryHost();
    host.add('a', disk(1 << 20, [[70000, 1, 1]]));
    host.add('b', disk(1 << 20));
    expect(await vimg(host, 'compare', 'a', 'b')).toMatchObject({ status: 1, stdout: `Content mismatch at offset ${70000 - (70000 % 512)}!\n` });
  });

  it('sizes differ: a warning, then the tail must be zero; -s fails at once', async () => {
    const host = new MemoryHost();
    host.add('small', disk(1 << 20));
    host.add('big', disk(2 << 20));
    expect(await vimg(host, 'compare', 'small', 'big')).toMatchObject({ status: 0, stdout: 'Warning: Image size mismatch!\nImages are identical.\n' });
    expect(await vimg(host, 'compare', '-s', 'small', 'big')).toMatchObject({ status: 1, stdout: 'Strict mode: Image size mismatch!\n' });
    host.add('bigger', disk(2 << 20, [[(1 << 20) + 1024, 1, 9]]));
    expect(await vimg(host, 'compare', 'small', 'bigger')).toMatchObject({ status: 1, stdout: `Warning: Image size mismatch!\nContent mismatch at offset ${(1 << 20) + 1024}!\n` });
  });

  it('an error exits 2 and prints "vimg: <message> [CODE]", no stack', async () => {
    const host = new MemoryHost();
    host.add('a', disk(4096));
    const result = await vimg(host, 'compare', 'a', 'missing');
    expect(result.status).toBe(2);
    expect(result.stderr).toBe("vimg: Could not open 'missing': No such file or directory [OPEN_FAILED]\n");
  });

  it('-q prints nothing', async () => {
    const host = new MemoryHost();
    host.add('a', disk(4096, [[0, 1, 1]]));
    host.add('b', disk(4096));
    expect(await vimg(host, 'compare', '-q', 'a', 'b')).toEqual({ status: 1, stdout: '', stderr: '' });
  });
});

describe('vimg convert', () => {
  it('copies the contents and skips zero runs of at least -S bytes on a fresh target', async () => {
    const host = new MemoryHost();
    const source = host.add('src', disk(8 << 20, [[0, 8192, 1], [(4 << 20) + 512, 512, 2]]));
    expect((await vimg(host, 'convert', '-O', 'raw', 'src', 'dst')).status).toBe(0);
    const target = host.disks.get('dst')!;
    expect(Buffer.from(target.bytes).equals(Buffer.from(source.bytes))).toBe(true);
    // Only the two data blocks were written: the rest of the disk stays a hole.
    expect([...target.written].sort((a, b) => a - b)).toEqual([0, 1, 1024]);
  });

  it('-S 0 writes everything (fully allocated)', async () => {
    const host = new MemoryHost();
    host.add('src', disk(1 << 20, [[0, 4096, 1]]));
    expect((await vimg(host, 'convert', '-S', '0', 'src', 'dst')).status).toBe(0);
    // Holes in the source are skipped by block status; data chunks are written whole.
    expect(host.disks.get('dst')!.written.has(0)).toBe(true);
  });

  it('concatenates several sources', async () => {
    const host = new MemoryHost();
    host.add('a', disk(65536, [[0, 65536, 1]]));
    host.add('b', disk(65536, [[0, 65536, 2]]));
    expect((await vimg(host, 'convert', 'a', 'b', 'ab')).status).toBe(0);
    const ab = host.disks.get('ab')!.bytes;
    expect(ab.length).toBe(131072);
    expect(ab[65535]).toBe(1);
    expect(ab[65536]).toBe(2);
  });

  it('-p prints qemu-img progress lines and a final newline', async () => {
    const host = new MemoryHost();
    host.add('src', disk(8 << 20, [[0, 8 << 20, 3]]));
    const result = await vimg(host, 'convert', '-p', 'src', 'dst');
    expect(result.stdout.startsWith('    (0.00/100%)\r')).toBe(true);
    expect(result.stdout.endsWith('    (100.00/100%)\r\n')).toBe(true);
    expect(result.stdout.split('\r').length).toBeGreaterThan(3);
  });

  it('-c to raw is refused with UNSUPPORTED', async () => {
    const host = new MemoryHost();
    host.add('src', disk(4096));
    expect(await vimg(host, 'convert', '-c', '-O', 'raw', 'src', 'dst')).toMatchObject({ status: 1, stderr: expect.stringContaining('[UNSUPPORTED]') as string });
  });
});

describe('vimg map', () => {
  it('json lists data and holes, merged', async () => {
    const host = new MemoryHost();
    host.add('d', disk(65536, [[0, 8192, 1]]));
    const result = await vimg(host, 'map', '--output=json', 'd');
    expect(result.stdout).toBe('[{ "start": 0, "length": 8192, "depth": 0, "present": true, "zero": false, "data": true, "offset": 0},\n{ "start": 8192, "length": 57344, "depth": 0, "present": true, "zero": true, "data": false, "offset": 8192}]\n');
  });
});

describe('vimg bench (qemu-img bench request stream)', () => {
  it('prints the same lines and sends count requests at qemu-img offsets', async () => {
    const host = new MemoryHost();
    const d = host.add('d', disk(65536));
    const result = await vimg(host, 'bench', '-w', '-c', '40', '-d', '4', '-s', '4096', '-S', '12288', '--pattern=170', 'd');
    expect(result.stdout).toMatch(/^Sending 40 write requests, 4096 bytes each, 4 in parallel \(starting at offset 0, step size 12288\)\nRun completed in \d+\.\d{3} seconds\.\n$/);
    const writes = d.requests.filter((r) => r.op === 'write');
    expect(writes).toHaveLength(40);
    // bench_cb: offset += step; offset %= size - bufsize
    let offset = 0;
    const expected: number[] = [];
    for (let i = 0; i < 40; i += 1) {
      expected.push(offset);
      offset = (offset + 12288) % (65536 - 4096);
    }
    expect(writes.map((w) => w.offset)).toEqual(expected);
    expect(d.bytes[0]).toBe(170);
  });

  it('--flush-interval flushes after every n requests', async () => {
    const host = new MemoryHost();
    const d = host.add('d', disk(65536));
    await vimg(host, 'bench', '-w', '-c', '20', '-d', '3', '--flush-interval=5', 'd');
    expect(d.requests.filter((r) => r.op === 'flush')).toHaveLength(4);
  });
});

describe('vimg resize', () => {
  it('+size grows, -size shrinks (raw needs no --shrink, with a warning)', async () => {
    const host = new MemoryHost();
    const d = host.add('d', disk(1 << 20));
    expect(await vimg(host, 'resize', 'd', '+1M')).toMatchObject({ status: 0, stdout: 'Image resized.\n' });
    expect(d.length).toBe(2 << 20);
    const shrink = await vimg(host, 'resize', 'd', '-512k');
    expect(shrink.status).toBe(0);
    expect(shrink.stderr).toContain('Shrinking an image will delete all data');
    expect(d.length).toBe((2 << 20) - (512 << 10));
    expect((await vimg(host, 'resize', 'd', '-4M')).stderr).toContain('[INVALID_SIZE]');
  });
});

describe('vimg errors', () => {
  it('unknown command and bad options: exit 1, one line, no stack', async () => {
    const host = new MemoryHost();
    const result = await vimg(host, 'frob');
    expect(result).toEqual({ status: 1, stdout: '', stderr: 'vimg: Command not found: frob [USAGE]\n' });
    const bad = await vimg(host, 'info', '--nope', 'x');
    expect(bad.stderr).toMatch(/^vimg: unknown option '--nope' \[USAGE\]\n$/);
  });
});

describe('subcommands whose block support is missing report UNSUPPORTED before touching the image', () => {
  it('commit without -d, rebase, amend', async () => {
    const host = new MemoryHost();
    const d = host.add('d', disk(65536, [[0, 10, 1]]));
    d.requests.length = 0;
    for (const argv of [['commit', 'd'], ['rebase', '-b', 'x', '-F', 'raw', 'd'], ['rebase', '-u', '-b', '', 'd'], ['amend', '-o', 'compat=0.10', 'd']]) {
      const result = await vimg(host, ...argv);
      expect(result.status, argv.join(' ')).toBe(1);
      expect(result.stderr, argv.join(' ')).toMatch(/^vimg: .* \[UNSUPPORTED\]\n$/);
    }
    expect(d.requests).toEqual([]);
  });
});
