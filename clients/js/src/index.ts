export { RoomClient, wireArgs } from "./client.js";
export type { ConnectOptions, Encoding, Events, ResyncEvent, SnapshotEvent, TokenSource, WebSocketConstructor } from "./client.js";
export { RoomError, ConnectionLost, ErrorCode } from "./errors.js";
export type { WireError } from "./errors.js";
export { ExponentialBackoff } from "./backoff.js";
export { OPS } from "./ops.generated.js";
export type { OpInfo, OpName, OpMethodName } from "./ops.generated.js";
export type * from "./types.js";
