import { fstatSync } from 'node:fs';
import { GuestMemory, GuestRegion } from '@virtio-ts/memory';
import { Mapping, closeFd } from '@virtio-ts/host';
import { VhostUserError } from '../errors.js';
import type { MemoryRegionDescription } from '../message.js';

/** One mapped region of the front-end's guest RAM. */
interface MappedRegion {
  readonly description: MemoryRegionDescription;
  readonly mapping: Mapping;
  readonly fd: number;
}

/**
 * The guest memory a front-end shares (SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG): each region's fd
 * is mmap'd and exposed as a {@link GuestMemory}; ring addresses, which vhost-user gives in the
 * front-end's virtual address space, translate to guest-physical addresses here.
 *
 * Every region is checked before anything is mapped: no overlap in guest or user space, the
 * mapping inside the fd's size (a mapping past the end of a memfd would SIGBUS on access), at most
 * `maxRegions`. A table that fails a check leaves the previous one in place and closes the new fds.
 */
export class MemoryTable {
  readonly maxRegions: number;
  private regions: MappedRegion[] = [];
  private memoryCache: GuestMemory | null = null;

  constructor(maxRegions = 32) {
    this.maxRegions = maxRegions;
  }

  /** Guest memory over the current regions (null when there are none). */
  get memory(): GuestMemory | null {
    if (this.memoryCache === null && this.regions.length > 0) {
      this.memoryCache = new GuestMemory(
        this.regions.map((r) => new GuestRegion({ guestAddress: r.description.guestAddress, size: r.description.size, buffer: r.mapping.buffer, offset: r.description.mmapOffset })),
      );
    }
    return this.memoryCache;
  }

  get regionCount(): number {
    return this.regions.length;
  }

  /** Replaces the whole table (SET_MEM_TABLE). Takes ownership of `fds` in every case. */
  replace(descriptions: readonly MemoryRegionDescription[], fds: readonly number[]): void {
    let mapped: MappedRegion[] = [];
    try {
      checkTable(descriptions, this.maxRegions);
      mapped = descriptions.map((d, i) => mapRegion(d, fds[i]!));
    } catch (error) {
      for (const r of mapped) release(r);
      for (const fd of fds.slice(mapped.length)) safeClose(fd);
      throw error;
    }
    const old = this.regions;
    this.regions = mapped;
    this.memoryCache = null;
    for (const r of old) release(r);
  }

  /**
   * Adds one region (ADD_MEM_REG). Takes ownership of `fd`. A region identical to one already
   * mapped (same guest address, size, user address and offset) is a no-op that returns false:
   * QEMU 7.2's vhost-user-net adds the whole table again for its second queue pair.
   */
  add(description: MemoryRegionDescription, fd: number): boolean {
    const same = this.regions.find(
      (r) => r.description.guestAddress === description.guestAddress && r.description.size === description.size && r.description.userAddress === description.userAddress && r.description.mmapOffset === description.mmapOffset,
    );
    if (same) {
      safeClose(fd);
      return false;
    }
    let region: MappedRegion | undefined;
    try {
      checkTable([...this.regions.map((r) => r.description), description], this.maxRegions);
      region = mapRegion(description, fd);
    } catch (error) {
      if (region) release(region);
      else safeClose(fd);
      throw error;
    }
    this.regions = [...this.regions, region];
    this.memoryCache = null;
    return true;
  }

  /** Removes the region matching guest address, user address and size (REM_MEM_REG). */
  remove(description: MemoryRegionDescription): void {
    const index = this.regions.findIndex(
      (r) => r.description.guestAddress === description.guestAddress && r.description.userAddress === description.userAddress && r.description.size === description.size,
    );
    if (index < 0) throw new VhostUserError('BAD_PAYLOAD', `no region at guest 0x${description.guestAddress.toString(16)} of ${description.size} bytes`, { request: 'REM_MEM_REG' });
    const [removed] = this.regions.splice(index, 1);
    this.regions = [...this.regions];
    this.memoryCache = null;
    release(removed!);
  }

  /** The guest-physical address of front-end virtual address `userAddress`, when `length` bytes from it lie in one region. */
  translate(userAddress: bigint, length: number): number | undefined {
    for (const r of this.regions) {
      const d = r.description;
      if (userAddress >= d.userAddress && userAddress + BigInt(length) <= d.userAddress + BigInt(d.size)) {
        return d.guestAddress + Number(userAddress - d.userAddress);
      }
    }
    return undefined;
  }

  /** Unmaps everything and closes every fd (connection end). */
  clear(): void {
    const old = this.regions;
    this.regions = [];
    this.memoryCache = null;
    for (const r of old) release(r);
  }
}

function checkTable(descriptions: readonly MemoryRegionDescription[], maxRegions: number): void {
  if (descriptions.length > maxRegions) throw new VhostUserError('BAD_PAYLOAD', `${descriptions.length} memory regions (max ${maxRegions})`);
  const byGuest = [...descriptions].sort((a, b) => a.guestAddress - b.guestAddress);
  for (let i = 1; i < byGuest.length; i++) {
    const [a, b] = [byGuest[i - 1]!, byGuest[i]!];
    if (b.guestAddress < a.guestAddress + a.size) throw new VhostUserError('BAD_PAYLOAD', `memory regions overlap in guest-physical space: 0x${a.guestAddress.toString(16)}+0x${a.size.toString(16)} and 0x${b.guestAddress.toString(16)}+0x${b.size.toString(16)}`);
  }
  const byUser = [...descriptions].sort((a, b) => (a.userAddress < b.userAddress ? -1 : a.userAddress > b.userAddress ? 1 : 0));
  for (let i = 1; i < byUser.length; i++) {
    if (byUser[i]!.userAddress < byUser[i - 1]!.userAddress + BigInt(byUser[i - 1]!.size)) throw new VhostUserError('BAD_PAYLOAD', 'memory regions overlap in the front-end address space');
  }
  for (const d of descriptions) {
    if (d.mmapOffset % 8 !== d.guestAddress % 8) throw new VhostUserError('BAD_PAYLOAD', 'region mmap offset and guest address disagree in alignment');
  }
}

function mapRegion(description: MemoryRegionDescription, fd: number): MappedRegion {
  let size: number;
  try {
    size = fstatSync(fd).size;
  } catch (error) {
    throw new VhostUserError('BAD_FDS', `memory region fd ${fd} cannot be inspected`, {}, { cause: error });
  }
  const end = description.mmapOffset + description.size;
  if (end > size) {
    throw new VhostUserError('BAD_PAYLOAD', `memory region needs ${end} bytes of its fd, which has ${size}`);
  }
  // Map from offset 0 so any mmap_offset works (mmap needs a page-aligned offset).
  const mapping = Mapping.map(fd, end);
  return { description, mapping, fd };
}

function release(region: MappedRegion): void {
  region.mapping.unmap();
  safeClose(region.fd);
}

function safeClose(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // already closed: nothing to release
  }
}
