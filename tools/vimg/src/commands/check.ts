import type { CheckCommand } from '../cli/parse.js';
import { checkExitCode, checkReportToJson, formatCheckHuman, formatRepairHuman } from '../format/check-result.js';
import { toQemuJson } from '../format/image-info.js';
import { VimgError } from '../errors.js';
import type { CommandContext } from './context.js';

/** qemu-img's exit status when the format has no check (ENOTSUP, 63). */
export const EXIT_CHECK_UNSUPPORTED = 63;

/**
 * `vimg check`: exit 0 clean, 1 the check could not complete, 2 corruptions, 3 leaks only, 63 the
 * format has no consistency check (raw), as qemu-img.
 */
export async function runCheck(command: CheckCommand, context: CommandContext): Promise<number> {
  let report;
  try {
    report = await context.host.check(command.filename, command.format, command.repair);
  } catch (error) {
    if (VimgError.isInstance(error) && error.code === 'UNSUPPORTED') {
      context.io.stderr('vimg: This image format does not support checks\n');
      return EXIT_CHECK_UNSUPPORTED;
    }
    throw error;
  }
  for (const message of report.messages ?? []) context.io.stderr(`${message}\n`);
  if (command.output === 'json') {
    context.io.stdout(`${toQemuJson(checkReportToJson(report))}\n`);
  } else if (!command.quiet) {
    if (report.leaksFixed > 0 || report.corruptionsFixed > 0) context.io.stdout(formatRepairHuman(report.leaksFixed, report.corruptionsFixed));
    context.io.stdout(formatCheckHuman(report));
  }
  return checkExitCode(report);
}
