/**
 * Finds the guest's `VT-EXIT=<status>` line in the serial console as it streams in, across chunk
 * boundaries, without keeping the console in memory (the guest's output is untrusted and
 * unbounded). Only a whole line counts; the first report wins.
 */
export class ExitStatusScanner {
  /** The start of the current line, when it is short enough to still become a VT-EXIT line. */
  #partial = '';
  /** True when the current line began in an earlier chunk and can no longer be a VT-EXIT line. */
  #midLine = false;
  #status: number | null = null;

  /** The reported status (0..255), or null while none has been seen. */
  get status(): number | null {
    return this.#status;
  }

  push(chunk: string): void {
    if (this.#status !== null) return;
    const text = (this.#midLine ? 'x' : '\n') + this.#partial + chunk;
    const match = /[\r\n]VT-EXIT=(\d{1,3})[\r\n]/.exec(text);
    if (match !== null) {
      this.#status = Math.min(Number(match[1]), 255);
      return;
    }
    const rest = text.slice(Math.max(text.lastIndexOf('\n'), text.lastIndexOf('\r')) + 1);
    // "VT-EXIT=255" is 11 characters; a longer unfinished line cannot be one.
    if (rest.length <= 12) {
      this.#partial = rest;
      this.#midLine = false;
    } else {
      this.#partial = '';
      this.#midLine = true;
    }
  }
}
