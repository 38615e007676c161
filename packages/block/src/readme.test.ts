import { expect, it } from 'vitest';
// The README example, verbatim apart from the imports.
import { MemoryFile, Qcow2Driver, createQcow2 } from './index.js';

it('README: create a qcow2 image in memory, write, flush, reopen and read', async () => {
  const file = new MemoryFile();
  await createQcow2(file, { size: 64 * 1024 * 1024, clusterSize: 65536 });

  const disk = await Qcow2Driver.open(file);
  await disk.write(4096, new TextEncoder().encode('hello, qcow2'));
  await disk.flush(); // everything written before this is durable
  await disk.close();

  const again = await Qcow2Driver.open(new MemoryFile({ data: file.snapshot() }), { readOnly: true });
  const bytes = new Uint8Array(12);
  await again.read(4096, bytes);
  expect(new TextDecoder().decode(bytes)).toBe('hello, qcow2');
  expect((await again.info()).formatSpecific).toMatchObject({ compat: '1.1', 'refcount-bits': 16 });
  await again.close();
});
