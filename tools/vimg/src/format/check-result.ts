/** The result of a consistency check, with qemu-img's ImageCheck fields. */
export interface CheckReport {
  readonly filename: string;
  readonly format: string;
  readonly checkErrors: number;
  readonly corruptions: number;
  readonly leaks: number;
  readonly corruptionsFixed: number;
  readonly leaksFixed: number;
  readonly imageEndOffset: number;
  readonly totalClusters: number;
  readonly allocatedClusters: number;
  readonly fragmentedClusters: number;
  readonly compressedClusters: number;
  /** What was found, one line each, in qemu-img's wording (printed on stderr). */
  readonly messages?: readonly string[];
}

/** `qemu-img check` exit status: 0 clean, 1 check not completed, 2 corruptions, 3 leaks only. */
export function checkExitCode(report: CheckReport): number {
  if (report.checkErrors > 0) return 1;
  if (report.corruptions > 0) return 2;
  if (report.leaks > 0) return 3;
  return 0;
}

/**
 * The JSON object `qemu-img check --output=json` prints: zero counters are left out (except
 * check-errors) and the keys come in the order qemu-img 7.2 prints them (its QDict order).
 */
export function checkReportToJson(report: CheckReport): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const optional = (key: string, value: number): void => {
    if (value !== 0) out[key] = value;
  };
  optional('image-end-offset', report.imageEndOffset);
  optional('compressed-clusters', report.compressedClusters);
  optional('total-clusters', report.totalClusters);
  optional('corruptions', report.corruptions);
  optional('corruptions-fixed', report.corruptionsFixed);
  out['check-errors'] = report.checkErrors;
  optional('leaks', report.leaks);
  optional('leaks-fixed', report.leaksFixed);
  optional('allocated-clusters', report.allocatedClusters);
  out['filename'] = report.filename;
  out['format'] = report.format;
  optional('fragmented-clusters', report.fragmentedClusters);
  return out;
}

/** `qemu-img check` human output (qemu 7.2 dump_human_image_check). */
export function formatCheckHuman(report: CheckReport): string {
  let out = '';
  if (report.corruptions === 0 && report.leaks === 0 && report.checkErrors === 0) {
    out += 'No errors were found on the image.\n';
  } else {
    if (report.corruptions > 0) out += `\n${report.corruptions} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n`;
    if (report.leaks > 0) out += `\n${report.leaks} leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n`;
    if (report.checkErrors > 0) out += `\n${report.checkErrors} internal errors have occurred during the check.\n`;
  }
  if (report.totalClusters !== 0 && report.allocatedClusters !== 0) {
    const pct = (part: number, whole: number): string => ((part * 100) / whole).toFixed(2);
    out += `${report.allocatedClusters}/${report.totalClusters} = ${pct(report.allocatedClusters, report.totalClusters)}% allocated, ${pct(report.fragmentedClusters, report.allocatedClusters)}% fragmented, ${pct(report.compressedClusters, report.allocatedClusters)}% compressed clusters\n`;
  }
  if (report.imageEndOffset !== 0) out += `Image end offset: ${report.imageEndOffset}\n`;
  return out;
}

/** The paragraph qemu-img prints before re-checking a repaired image. */
export function formatRepairHuman(leaksFixed: number, corruptionsFixed: number): string {
  return `The following inconsistencies were found and repaired:\n\n    ${leaksFixed} leaked clusters\n    ${corruptionsFixed} corruptions\n\nDouble checking the fixed image now...\n`;
}
