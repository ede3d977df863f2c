import { ErrorCode } from "./ops.generated.js";

export { ErrorCode };

export interface WireError {
  code: number;
  reason: string;
  message: string;
  field?: string;
  retry_after_ms?: number;
}

/** An error reply of the server: branch on `code` (or `reason`, its name). */
export class RoomError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly field?: string;
  readonly retryAfterMs?: number;

  constructor(code: number, reason: string, message: string, field?: string, retryAfterMs?: number) {
    super(message);
    this.name = "RoomError";
    this.code = code;
    this.reason = reason;
    if (field !== undefined && field !== null) this.field = field;
    if (retryAfterMs !== undefined && retryAfterMs !== null) this.retryAfterMs = retryAfterMs;
  }

  static fromWire(error: unknown): RoomError {
    if (typeof error !== "object" || error === null) {
      return new RoomError(ErrorCode.INTERNAL, "INTERNAL", `malformed error reply: ${String(error)}`);
    }
    const e = error as Partial<WireError>;
    const code = typeof e.code === "number" ? e.code : ErrorCode.INTERNAL;
    return new RoomError(code, String(e.reason ?? "INTERNAL"), String(e.message ?? ""), e.field, e.retry_after_ms);
  }
}

/** The connection is gone (or was never open): a call could not get its reply. `code` and
 * `reason` are the WebSocket close code and reason when there was one. */
export class ConnectionLost extends Error {
  readonly code?: number;
  readonly reason?: string;

  constructor(message: string, code?: number, reason?: string) {
    super(message);
    this.name = "ConnectionLost";
    if (code !== undefined) this.code = code;
    if (reason !== undefined) this.reason = reason;
  }
}
