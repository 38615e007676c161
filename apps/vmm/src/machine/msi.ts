/**
 * MSI message format of the model guest, after x86's: the address selects the destination vCPU
 * (bits 19:12 of 0xFEEx_x000), the data is the vector. A device's MSI-X write of such a message
 * is an interrupt of that vector on that vCPU.
 */
export const MSI_ADDRESS_BASE = 0xfee0_0000;
const MSI_ADDRESS_MASK = 0xfff0_0000;

/** The MSI address that targets `vcpu`. */
export function msiAddress(vcpu: number): number {
  return MSI_ADDRESS_BASE + (vcpu & 0xff) * 0x1000;
}

/** The destination vCPU and vector of a message, or undefined when the address is not an interrupt address. */
export function decodeMsi(address: number, data: number): { vcpu: number; vector: number } | undefined {
  if (!Number.isSafeInteger(address) || (address & MSI_ADDRESS_MASK) >>> 0 !== MSI_ADDRESS_BASE) return undefined;
  return { vcpu: (address >>> 12) & 0xff, vector: data & 0xff };
}
