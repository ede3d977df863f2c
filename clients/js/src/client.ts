import { decode as mpDecode, encode as mpEncode } from "@msgpack/msgpack";
import { ExponentialBackoff } from "./backoff.js";
import { ConnectionLost, ErrorCode, RoomError } from "./errors.js";
import { OPS, type OpMethodName, type OpName } from "./ops.generated.js";
import { ResumeState, fitResume, type Resync } from "./resume.js";
import type * as T from "./types.js";

export type Encoding = "json" | "msgpack";
export type TokenSource = () => string | Promise<string>;

/** A WebSocket constructor with the browser's API (globalThis.WebSocket, or `ws` in Node). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocket;

export interface ConnectOptions {
  /** the app key */
  key: string;
  /** a JWT; or use getToken */
  token?: string;
  /** called before every connection attempt (the first and each reconnect): token refresh */
  getToken?: TokenSource;
  /** default "json" */
  encoding?: Encoding;
  /** default true: reconnect after a drop, with backoff + jitter, resume, resync, re-watch */
  reconnect?: boolean;
  /** room id -> the last seq seen, sent with the first auth */
  resume?: Record<string, number>;
  /** [base, cap] seconds of the reconnect backoff (protocol/backoff.py); default [0.1, 5] */
  backoff?: [number, number];
  /** the WebSocket constructor; default globalThis.WebSocket, else the `ws` package */
  WebSocket?: WebSocketConstructor;
  /** send idempotency keys on mutating ops and retry them after a lost reply; default true */
  idempotency?: boolean;
  /** how often a mutating op is retried after "store unavailable" (100001); default 3 */
  storeRetries?: number;
  /** bound on the first connection (handshake + auth), ms; default 10000 */
  connectTimeoutMs?: number;
  /** ask for `presence` events (members of your rooms coming online, going offline), on
   * every connection; default false */
  presence?: boolean;
}

export interface ResyncEvent extends Resync {}
export interface SnapshotEvent {
  /** the room as re-read with room.get after a resync */
  room: T.Room;
}

export interface Events {
  system: (message: T.SystemMessage) => void;
  resync: (event: ResyncEvent) => void;
  snapshot: (event: SnapshotEvent) => void;
  /** a member of one of your rooms came online or went offline (option `presence`) */
  presence: (event: T.PresenceEvent) => void;
  state: (state: T.State) => void;
  /** why a connection ended (each drop, and the final close) */
  disconnect: (lost: ConnectionLost) => void;
}

const SUBPROTOCOL: Record<Encoding, string> = { json: "roomhub.v1.json", msgpack: "roomhub.v1.msgpack" };
const RETRYABLE_AUTH = new Set<number>([ErrorCode.INTERNAL, ErrorCode.RATE_LIMITED]);
const NORMAL_CLOSURE = 1000;
const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_PROTOCOL_ERROR = 1002;

type Frame = Record<string, unknown>;

interface Pending {
  resolve: (frame: Frame) => void;
  reject: (error: Error) => void;
  /** runs synchronously when the reply is read, before any later frame */
  onReply?: (frame: Frame) => void;
  ws: WebSocket;
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
}

/** Top-level camelCase keys to the op's wire names (from the op table); undefined dropped. */
export function wireArgs(op: string, args: object | undefined): Frame {
  const names = (OPS as Record<string, { args: Record<string, string> }>)[op]?.args ?? {};
  const out: Frame = {};
  for (const [k, v] of Object.entries(args ?? {})) {
    if (v === undefined) continue;
    out[names[k] ?? snake(k)] = v;
  }
  return out;
}

function randomKey(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function defaultWebSocket(): Promise<WebSocketConstructor> {
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (global) return global;
  const name = "ws"; // (a variable: bundlers leave it alone; Node only)
  try {
    const mod = (await import(name)) as { default?: WebSocketConstructor; WebSocket?: WebSocketConstructor };
    const ctor = mod.WebSocket ?? mod.default;
    if (ctor) return ctor;
  } catch {
    /* below */
  }
  throw new Error("no WebSocket: pass connect(url, {WebSocket}) or install the 'ws' package");
}

/** The roomhub client: one authenticated connection at a time, reconnecting on its own. */
export class RoomClient {
  readonly url: string;
  readonly encoding: Encoding;
  /** the last auth result */
  welcome: T.AuthResult | null = null;

  private readonly opts: ConnectOptions;
  private readonly reconnect: boolean;
  private readonly backoff: ExponentialBackoff;
  private readonly resumeState: ResumeState;
  private readonly watched = new Set<string>();
  private readonly listeners: { [K in keyof Events]: Set<Events[K]> } = {
    system: new Set(), resync: new Set(), snapshot: new Set(), presence: new Set(), state: new Set(),
    disconnect: new Set(),
  };
  private ctor: WebSocketConstructor | null = null;
  private ws: WebSocket | null = null;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private currentState: T.State = "connecting";
  private closing = false;
  private lost: ConnectionLost | null = null;
  private stateWaiters: Array<() => void> = [];

  private constructor(url: string, opts: ConnectOptions) {
    if (!opts || typeof opts.key !== "string") throw new TypeError("connect needs {key}");
    if (typeof opts.token !== "string" && typeof opts.getToken !== "function") {
      throw new TypeError("connect needs {token} or {getToken}");
    }
    const encoding = opts.encoding ?? "json";
    if (encoding !== "json" && encoding !== "msgpack") {
      throw new TypeError(`encoding must be "json" or "msgpack", not ${String(encoding)}`);
    }
    this.url = url;
    this.opts = opts;
    this.encoding = encoding;
    this.reconnect = opts.reconnect ?? true;
    const [base, cap] = opts.backoff ?? [0.1, 5.0];
    this.backoff = new ExponentialBackoff(base, cap);
    this.resumeState = new ResumeState(opts.resume);
  }

  /** Connect and authenticate; rejects (RoomError, e.g. 100010 for a bad key or token, or an
   * Error when the hub cannot be reached) if the first connection fails. */
  static async connect(url: string, opts: ConnectOptions): Promise<RoomClient> {
    const client = new RoomClient(url, opts);
    client.ctor = opts.WebSocket ?? (await defaultWebSocket());
    client.notify("connecting");
    try {
      await client.open(true);
    } catch (error) {
      client.finish(new ConnectionLost(`could not connect: ${(error as Error).message}`));
      throw error;
    }
    return client;
  }

  // events ------------------------------------------------------------------------------

  /** Listen to an event; returns a function that removes the listener. */
  on<K extends keyof Events>(event: K, listener: Events[K]): () => void {
    this.listeners[event].add(listener);
    return () => this.off(event, listener);
  }

  off<K extends keyof Events>(event: K, listener: Events[K]): void {
    this.listeners[event].delete(listener);
  }

  private emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void {
    for (const listener of [...this.listeners[event]]) {
      try {
        (listener as (...a: unknown[]) => void)(...args);
      } catch (error) {
        console.error(`roomhub: a '${event}' listener failed`, error);
      }
    }
  }

  /** System messages from now on, in seq order per room, each once; ends after close().
   * Messages are buffered from this call on (not before). */
  messages(): AsyncIterableIterator<T.SystemMessage> {
    const queue: T.SystemMessage[] = [];
    let wake: (() => void) | null = null;
    let done = this.currentState === "closed";
    const offSystem = this.on("system", (m) => { queue.push(m); wake?.(); });
    const offState = this.on("state", (s) => { if (s === "closed") { done = true; wake?.(); } });
    const stop = () => { done = true; offSystem(); offState(); wake?.(); };
    const iterator: AsyncIterableIterator<T.SystemMessage> = {
      [Symbol.asyncIterator]: () => iterator,
      next: async () => {
        while (queue.length === 0 && !done) await new Promise<void>((r) => { wake = r; });
        wake = null;
        if (queue.length > 0) return { value: queue.shift()!, done: false };
        stop();
        return { value: undefined, done: true };
      },
      return: async () => { stop(); queue.length = 0; return { value: undefined, done: true }; },
    };
    return iterator;
  }

  // state -------------------------------------------------------------------------------

  get state(): T.State {
    return this.currentState;
  }

  /** the authenticated user id (the token's `sub`) */
  get user(): string {
    return this.welcome?.user ?? "";
  }

  /** room id -> the seq a reconnect resumes from (a copy) */
  get lastSeqs(): Record<string, number> {
    return this.resumeState.lastSeqs();
  }

  /** the rooms watched with watchRoom (re-watched after each reconnect) */
  get watchedRooms(): string[] {
    return [...this.watched];
  }

  private notify(state: T.State): void {
    this.currentState = state;
    const waiters = this.stateWaiters;
    this.stateWaiters = [];
    for (const w of waiters) w();
    this.emit("state", state);
  }

  /** A new ConnectionLost (its own stack) for why the client is not open. */
  private fresh(): ConnectionLost {
    const lost = this.lost ?? new ConnectionLost("not connected");
    return new ConnectionLost(lost.message, lost.code, lost.reason);
  }

  /** Resolves once the state is "open"; rejects with ConnectionLost once it is "closed". */
  async waitOpen(): Promise<void> {
    while (this.currentState !== "open") {
      if (this.currentState === "closed") throw this.fresh();
      await new Promise<void>((r) => this.stateWaiters.push(r));
    }
  }

  /** Close the client and stop reconnecting; pending calls reject with ConnectionLost. */
  close(): void {
    if (this.currentState === "closed") return;
    this.closing = true;
    const ws = this.ws;
    this.finish(new ConnectionLost("connection closed by the client", NORMAL_CLOSURE));
    try {
      ws?.close(NORMAL_CLOSURE);
    } catch {
      /* already closing */
    }
  }

  // connecting --------------------------------------------------------------------------

  private async token(): Promise<string> {
    const value = this.opts.getToken ? await this.opts.getToken() : this.opts.token;
    if (typeof value !== "string") throw new TypeError("getToken must return a string");
    return value;
  }

  /** One connection: handshake, auth (resume), adopt rooms, re-watch; then state "open". */
  private async open(first: boolean): Promise<void> {
    const token = await this.token();
    const ctor = this.ctor!;
    const ws = new ctor(this.url, SUBPROTOCOL[this.encoding]);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    const timeoutMs = this.opts.connectTimeoutMs ?? 10000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
        ws.onopen = () => resolve();
        ws.onerror = () => reject(new Error(`cannot connect to ${this.url}`));
        ws.onclose = (e) => reject(new ConnectionLost(`closed during the handshake (code ${e.code})`, e.code, e.reason));
      });
      clearTimeout(timer);
      ws.onerror = null;
      ws.onmessage = (e) => this.onFrame(ws, e.data);
      ws.onclose = (e) => this.onClose(ws, e.code, e.reason);
      const watchedHere = this.watched;
      const resumeAll = first ? { ...this.resumeState.lastSeqs() } : this.resumeState.lastSeqs();
      for (const room of watchedHere) delete resumeAll[room]; // re-watched below, not resumed
      const [resume, leftOut] = fitResume(resumeAll);
      const authArgs: Frame = { key: this.opts.key, token };
      if (Object.keys(resume).length > 0) authArgs.resume = resume;
      if (this.opts.presence) authArgs.presence = true;
      const welcome = (await this.request(ws, "auth", authArgs, (frame) => {
        // known before the replayed messages that follow the auth reply are read
        if (frame.ok === true) this.resumeState.user = (frame.result as T.AuthResult).user;
      })) as T.AuthResult;
      await this.adopt(ws, welcome, first, leftOut);
      await this.rewatch(ws);
      if (this.ws !== ws || this.closing) throw new ConnectionLost("connection closed while opening");
      this.welcome = welcome;
      this.lost = null;
      this.backoff.reset();
      this.notify("open");
    } catch (error) {
      clearTimeout(timer);
      ws.onclose = null;
      ws.onmessage = null;
      ws.onopen = null;
      ws.onerror = null;
      try { ws.close(); } catch { /* never opened */ }
      this.failPending(ws, error instanceof ConnectionLost ? error : new ConnectionLost(String((error as Error).message)));
      throw error;
    }
  }

  /** Resume points for the rooms of an auth result that have none (one room.list). */
  private async adopt(ws: WebSocket, welcome: T.AuthResult, first: boolean, leftOut: string[]): Promise<void> {
    const untracked = this.reconnect ? this.resumeState.untracked(welcome.rooms) : [];
    if (untracked.length === 0 && leftOut.length === 0) return;
    const listed = (await this.request(ws, "room.list", {})) as T.RoomList;
    const seqs = new Map(listed.rooms.map((r) => [r.id, r.seq] as const));
    const resyncs: Resync[] = [];
    for (const room of untracked) {
      const seq = seqs.get(room);
      if (seq === undefined) continue;
      if (first) this.resumeState.floors.set(room, seq);
      else if (!this.resumeState.seqs.has(room)) resyncs.push({ room, seq });
    }
    for (const room of leftOut) {
      const seq = seqs.get(room);
      if (seq !== undefined) resyncs.push({ room, seq });
      else this.resumeState.forget(room);
    }
    for (const resync of resyncs) this.resynced(resync);
  }

  /** After a reconnect: room.watch again for each watched room, after the last seq seen. */
  private async rewatch(ws: WebSocket): Promise<void> {
    await Promise.all(
      [...this.watched].map(async (room) => {
        const after = this.resumeState.last(room);
        const args: Frame = { room };
        if (after !== undefined) args.after_seq = after;
        try {
          await this.request(ws, "room.watch", args);
        } catch (error) {
          if (error instanceof RoomError && (error.code === ErrorCode.ROOM_NOT_FOUND || error.code === ErrorCode.NOT_A_MEMBER)) {
            this.watched.delete(room);
            this.resynced({ room, seq: 0 }); // gone: tell the app, as the server's resync 0 would
            return;
          }
          throw error;
        }
      }),
    );
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws) return;
    const text = this.closing
      ? "connection closed by the client"
      : `connection closed by the server (code ${code}${reason ? ": " + reason : ""})`;
    const lost = new ConnectionLost(text, code, reason);
    this.ended(ws, lost, code === CLOSE_PROTOCOL_ERROR && this.protocolError);
  }

  private protocolError = false;

  private ended(ws: WebSocket, lost: ConnectionLost, final: boolean): void {
    if (this.currentState !== "open") {
      this.failPending(ws, lost); // an attempt that failed: the open/reconnect loop decides
      return;
    }
    this.emit("disconnect", lost);
    const fixedToken = typeof this.opts.getToken !== "function";
    if (final || this.closing || !this.reconnect || (lost.code === CLOSE_UNAUTHENTICATED && fixedToken)) {
      this.finish(lost);
      return;
    }
    this.lost = new ConnectionLost(`${lost.message}; reconnecting`, lost.code, lost.reason);
    this.failPending(ws, lost);
    this.notify("reconnecting");
    void this.reconnectLoop();
  }

  private async reconnectLoop(): Promise<void> {
    while (!this.closing && this.currentState === "reconnecting") {
      await sleep(this.backoff.nextDelay() * 1000);
      if (this.closing) return;
      try {
        await this.open(false);
        return;
      } catch (error) {
        if (error instanceof RoomError) {
          const fixedToken = typeof this.opts.getToken !== "function";
          if (error.code === ErrorCode.UNAUTHENTICATED && fixedToken) {
            this.finish(new ConnectionLost(`reconnect refused: ${error.message}`, CLOSE_UNAUTHENTICATED, error.message));
            return;
          }
          if (!RETRYABLE_AUTH.has(error.code) && error.code !== ErrorCode.UNAUTHENTICATED) {
            this.finish(new ConnectionLost(`reconnect refused: ${error.message}`));
            return;
          }
        }
        // unreachable, refused, a failing getToken...: try again after the next delay
      }
    }
  }

  private failPending(ws: WebSocket, lost: ConnectionLost): void {
    for (const [id, p] of this.pending) {
      if (p.ws !== ws) continue;
      this.pending.delete(id);
      p.reject(new ConnectionLost(lost.message, lost.code, lost.reason));
    }
  }

  private finish(lost: ConnectionLost): void {
    if (this.currentState === "closed") return;
    this.closing = true;
    this.lost = lost;
    for (const [, p] of this.pending) p.reject(new ConnectionLost(lost.message, lost.code, lost.reason));
    this.pending.clear();
    this.notify("closed");
    this.emit("disconnect", lost);
  }

  // the wire ----------------------------------------------------------------------------

  private encode(frame: Frame): string | Uint8Array {
    return this.encoding === "json" ? JSON.stringify(frame) : mpEncode(frame);
  }

  private decode(data: unknown): Frame {
    let frame: unknown;
    if (this.encoding === "json") {
      if (typeof data !== "string") throw new TypeError("binary frame on a JSON connection");
      frame = JSON.parse(data);
    } else {
      if (typeof data === "string") throw new TypeError("text frame on a msgpack connection");
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array);
      frame = mpDecode(bytes);
    }
    if (typeof frame !== "object" || frame === null || Array.isArray(frame)) throw new TypeError("frame is not a map");
    return frame as Frame;
  }

  private onFrame(ws: WebSocket, data: unknown): void {
    if (this.ws !== ws) return;
    let frame: Frame;
    try {
      frame = this.decode(data);
    } catch (error) {
      // final even with reconnect: a replay would bring the same frame again
      console.error("roomhub: protocol error, closing", error);
      this.protocolError = true;
      const lost = new ConnectionLost(`protocol error: ${(error as Error).message}`, CLOSE_PROTOCOL_ERROR);
      if (this.currentState === "open") this.ended(ws, lost, true);
      else this.failPending(ws, lost);
      try { ws.close(4000, "client could not read a frame"); } catch { /* closing */ }
      return;
    }
    const event = frame.event;
    if (event === "system") {
      this.deliver(frame.message as T.SystemMessage);
    } else if (event === "resync") {
      this.resynced({ room: frame.room as string, seq: frame.seq as number });
    } else if (event === "presence") {
      const { room, user, online, time_ms } = frame as unknown as T.PresenceEvent;
      this.emit("presence", { room, user, online, time_ms });
    } else if (event === undefined || event === null) {
      const re = frame.re as number;
      const p = this.pending.get(re);
      if (!p) return;
      this.pending.delete(re);
      try {
        p.onReply?.(frame);
      } catch (error) {
        console.error("roomhub: reply hook failed", error);
      }
      p.resolve(frame);
    }
  }

  private deliver(message: T.SystemMessage): void {
    if (!this.resumeState.accept(message)) return; // already delivered: a replay's repeat
    if (this.resumeState.ends(message)) {
      this.resumeState.forget(message.room);
      if (message.type === "dismissRoom") this.watched.delete(message.room);
    }
    this.emit("system", message);
  }

  /** A resync: the room's last seq is the resync's from now on; the event is emitted, and the
   * room is re-read with room.get (a `snapshot` event) unless it is gone (seq 0). */
  private resynced(resync: Resync): void {
    this.resumeState.resync(resync);
    if (resync.seq === 0) this.watched.delete(resync.room);
    this.emit("resync", { room: resync.room, seq: resync.seq });
    if (resync.seq === 0) return;
    queueMicrotask(() => {
      this.waitOpen()
        .then(() => this.call("room.get", { room: resync.room }) as Promise<T.Room>)
        .then((room) => this.emit("snapshot", { room }))
        .catch(() => { /* gone for us, or closed: nothing to show */ });
    });
  }

  private request(ws: WebSocket, op: string, args: Frame, onReply?: (frame: Frame) => void): Promise<unknown> {
    const id = this.nextId++;
    const frame: Frame = { id, op };
    if (Object.keys(args).length > 0) frame.args = args;
    return new Promise<Frame>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onReply, ws });
      try {
        ws.send(this.encode(frame));
      } catch {
        /* the close handler fails the call */
      }
    }).then((reply) => {
      if (reply.ok === true) return reply.result;
      throw RoomError.fromWire(reply.error);
    });
  }

  // calls -------------------------------------------------------------------------------

  /** Any op by its wire name, with wire (snake_case) args; resolves to the wire's result. */
  async call(op: string, args: Frame = {}, onReply?: (frame: Frame) => void): Promise<unknown> {
    if (this.currentState !== "open" || !this.ws) throw this.fresh();
    const spec = (OPS as Record<string, { mutating: boolean }>)[op];
    if (!spec?.mutating || this.opts.idempotency === false) return this.request(this.ws, op, args, onReply);
    const keyed: Frame = { idempotency_key: randomKey(), ...args };
    return this.exactlyOnce(op, keyed, onReply);
  }

  /** A mutating call with its idempotency key: sent again with the same key after a lost reply
   * (once a reconnect is open), or after "store unavailable"; applied at most once. */
  private async exactlyOnce(op: string, args: Frame, onReply?: (frame: Frame) => void): Promise<unknown> {
    const storeBackoff = new ExponentialBackoff(0.1, Infinity, false);
    for (;;) {
      try {
        if (this.currentState !== "open" || !this.ws) throw this.fresh();
        return await this.request(this.ws, op, args, onReply);
      } catch (error) {
        if (error instanceof ConnectionLost) {
          if (!this.reconnect || this.closing || this.currentState === "closed") throw error;
          await this.waitOpen();
          continue;
        }
        if (error instanceof RoomError) {
          const unavailable = error.code === ErrorCode.INTERNAL && error.message.includes("unavailable");
          if (!unavailable || storeBackoff.failures >= (this.opts.storeRetries ?? 3)) throw error;
          await sleep(storeBackoff.nextDelay() * 1000);
          if (this.currentState !== "open") {
            if (!this.reconnect || this.closing) throw error;
            await this.waitOpen();
          }
          continue;
        }
        throw error;
      }
    }
  }

  private op(name: OpName, args: object | undefined, onReply?: (frame: Frame) => void): Promise<unknown> {
    return this.call(name, wireArgs(name, args), onReply);
  }

  // the ops (one per op of the op table; checked at compile time below) -------------------

  /** Create or update a user's profile (server tokens). */
  upsertUser(args: T.UpsertUserArgs): Promise<T.User> {
    return this.op("user.upsert", args) as Promise<T.User>;
  }

  /** Create a room; a user's own room is resumed from its start. */
  async createRoom<A extends T.CreateRoomArgs>(args: A): Promise<T.RoomOrAck<A>> {
    const result = (await this.op("room.create", args)) as T.Room | T.Ack;
    if (args.owner === undefined && args.operator === undefined) {
      this.resumeState.created("id" in result ? result.id : result.room);
    }
    return result as T.RoomOrAck<A>;
  }

  /** The room, members and invitations; `presence: true` sets each member's `online`. */
  getRoom(args: T.GetRoomArgs): Promise<T.Room> {
    return this.op("room.get", args) as Promise<T.Room>;
  }

  /** The room's members online now (a connection open on any hub node). */
  presence(args: T.RoomArgs): Promise<T.RoomPresence> {
    return this.op("room.presence", args) as Promise<T.RoomPresence>;
  }

  /** The caller's rooms (member or invited), without members. */
  listRooms(args: T.ListRoomsArgs = {}): Promise<T.RoomList> {
    return this.op("room.list", args) as Promise<T.RoomList>;
  }

  addMembers<A extends T.AddMembersArgs>(args: A): Promise<T.RoomOrAck<A>> {
    return this.op("member.add", args) as Promise<T.RoomOrAck<A>>;
  }

  acceptInvitation<A extends T.RoomMutationArgs>(args: A): Promise<T.RoomOrAck<A>> {
    return this.op("invitation.accept", args) as Promise<T.RoomOrAck<A>>;
  }

  declineInvitation<A extends T.RoomMutationArgs>(args: A): Promise<T.EmptyOrAck<A>> {
    return this.op("invitation.decline", args) as Promise<T.EmptyOrAck<A>>;
  }

  updateMember<A extends T.UpdateMemberArgs>(args: A): Promise<T.RoomOrAck<A>> {
    return this.op("member.update", args) as Promise<T.RoomOrAck<A>>;
  }

  removeMember<A extends T.MemberTargetArgs>(args: A): Promise<T.RoomOrAck<A>> {
    return this.op("member.remove", args) as Promise<T.RoomOrAck<A>>;
  }

  leaveRoom<A extends T.RoomMutationArgs>(args: A): Promise<T.EmptyOrAck<A>> {
    return this.op("room.leave", args) as Promise<T.EmptyOrAck<A>>;
  }

  history(args: T.HistoryArgs): Promise<T.HistoryPage> {
    return this.op("room.history", args) as Promise<T.HistoryPage>;
  }

  updateRoom<A extends T.UpdateRoomArgs>(args: A): Promise<T.RoomOrAck<A>> {
    return this.op("room.update", args) as Promise<T.RoomOrAck<A>>;
  }

  listMembers(args: T.ListMembersArgs): Promise<T.MemberPage> {
    return this.op("room.members", args) as Promise<T.MemberPage>;
  }

  transferRoom<A extends T.TransferRoomArgs>(args: A): Promise<T.RoomOrAck<A>> {
    return this.op("room.transfer", args) as Promise<T.RoomOrAck<A>>;
  }

  cancelInvitations<A extends T.CancelInvitationsArgs>(args: A): Promise<T.RoomOrAck<A>> {
    return this.op("invitation.cancel", args) as Promise<T.RoomOrAck<A>>;
  }

  dismissRoom<A extends T.RoomMutationArgs>(args: A): Promise<T.EmptyOrAck<A>> {
    return this.op("room.dismiss", args) as Promise<T.EmptyOrAck<A>>;
  }

  /** Follow a room live (server tokens): its system events from after `afterSeq` (or the
   * reply's seq), gapless; re-watched after every reconnect from the last seq seen. */
  watchRoom(args: T.WatchRoomArgs): Promise<T.Room> {
    const room = args.room;
    if (args.afterSeq !== undefined && !this.resumeState.knows(room)) {
      this.resumeState.seqs.set(room, args.afterSeq);
    }
    return this.op("room.watch", args, (frame) => {
      if (frame.ok !== true) return;
      // (synchronously, before the events that follow the reply are read)
      if (!this.resumeState.knows(room)) this.resumeState.seqs.set(room, (frame.result as T.Room).seq);
      this.watched.add(room);
    }) as Promise<T.Room>;
  }

  async unwatchRoom(args: T.UnwatchRoomArgs): Promise<T.Empty> {
    const result = (await this.op("room.unwatch", args)) as T.Empty;
    this.watched.delete(args.room);
    this.resumeState.forget(args.room);
    return result;
  }

  /** The app's rooms, by id, a page at a time (server tokens). */
  appRooms(args: T.AppRoomsArgs = {}): Promise<T.RoomPage> {
    return this.op("app.rooms", args) as Promise<T.RoomPage>;
  }
}

// Compile-time check: every op of the generated table has its typed method on RoomClient.
// (An op added to protocol/ops.py and regenerated without a method fails `tsc`.)
type _OpMethods = { [M in OpMethodName]: (args: never) => Promise<unknown> };
const _everyOpHasAMethod: _OpMethods = RoomClient.prototype;
void _everyOpHasAMethod;
