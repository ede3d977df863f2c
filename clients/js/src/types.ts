/** The wire's objects (docs/protocol.md §4), snake_case as on the wire. */

export type Role = "owner" | "admin" | "member" | "guest";

export interface Member {
  id: string;
  role: Role;
  nickname: string;
  avatar: string;
  level: number;
  custom_info: string;
  extension: string;
  props: Record<string, unknown>;
  joined_ms: number;
  /** only from getRoom with `presence: true`: a connection open on any hub node now */
  online?: boolean;
}

export interface Invitation {
  user: string;
  inviter: string;
  time_ms: number;
}

export interface Room {
  id: string;
  name: string;
  type: "group" | "direct";
  owner: string;
  created_ms: number;
  seq: number;
  members: Member[];
  invitations: Invitation[];
  custom: Record<string, unknown>;
}

export type SystemMessageType =
  | "createRoom" | "addMember" | "inviteMember" | "acceptInvitation" | "declineInvitation"
  | "assignAdmin" | "revokeAdmin" | "setRole" | "updateMember" | "removeMember" | "leaveRoom"
  | "dismissRoom" | "updateRoom" | "transferOwner" | "cancelInvitation";

export interface SystemMessage {
  room: string;
  seq: number;
  type: SystemMessageType;
  sender: string;
  targets: string[];
  changes: Record<string, unknown>;
  notify: boolean;
  extension: string | null;
  time_ms: number;
}

export interface User {
  id: string;
  nickname: string;
  avatar: string;
}

export interface Ack {
  room: string;
  seq: number;
}

export interface HistoryPage {
  messages: SystemMessage[];
  more: boolean;
}

export interface MemberPage {
  members: Member[];
  next: string | null;
}

export interface RoomList {
  rooms: Room[];
}

export interface RoomPage {
  rooms: Room[];
  next: string | null;
}

/** room.presence: the members online now, sorted by id */
export interface RoomPresence {
  online: string[];
  count: number;
}

/** A `presence` event (connect option `presence: true`): a member of `room` came online or
 * went offline. Not part of the room's history; in order per user. */
export interface PresenceEvent {
  room: string;
  user: string;
  online: boolean;
  time_ms: number;
}

export interface AuthResult {
  user: string;
  rooms: string[];
  server: { version: string; node: string };
}

export type Empty = Record<string, never>;

// op args: top-level keys camelCase (converted to the wire's snake_case) --------------------

export interface Common {
  /** a server token acting as this user (§3.3) */
  operator?: string;
}
export interface Mutating extends Common {
  /** your own idempotency key; by default the client makes one per call */
  idempotencyKey?: string;
}
export interface WithReply<R extends "room" | "ack" = "room" | "ack"> extends Mutating {
  reply?: R;
}

export interface UpsertUserArgs extends Mutating { id: string; nickname?: string; avatar?: string; reply?: "room" | "ack" }
export interface CreateRoomArgs extends WithReply {
  room?: string; name?: string; type?: "group" | "direct"; members?: string[]; owner?: string;
  custom?: Record<string, unknown>;
}
export interface RoomArgs extends Common { room: string }
export interface GetRoomArgs extends RoomArgs { presence?: boolean }
export interface ListRoomsArgs extends Common {}
export interface AddMembersArgs extends WithReply {
  room: string; invitees: string[]; invitationRequired?: boolean; systemMessage?: boolean;
}
export interface RoomMutationArgs extends WithReply { room: string }
export interface UpdateMemberArgs extends WithReply {
  room: string; user: string; properties: Record<string, unknown>; systemMessage?: boolean;
  notificationExtension?: string;
}
export interface MemberTargetArgs extends WithReply { room: string; user: string }
export interface HistoryArgs extends Common { room: string; afterSeq?: number; limit?: number }
export interface UpdateRoomArgs extends WithReply { room: string; name?: string; custom?: Record<string, unknown> }
export interface ListMembersArgs extends Common { room: string; after?: string | null; limit?: number }
export interface TransferRoomArgs extends WithReply { room: string; to: string }
export interface CancelInvitationsArgs extends WithReply { room: string; invitees: string[] }
export interface WatchRoomArgs { room: string; afterSeq?: number }
export interface UnwatchRoomArgs { room: string }
export interface AppRoomsArgs { after?: string | null; prefix?: string; limit?: number }

/** A result that is the Room, or the Ack with `reply: "ack"`. */
export type RoomOrAck<A> = A extends { reply: "ack" } ? Ack : Room;
/** A result that is `{}`, or the Ack with `reply: "ack"`. */
export type EmptyOrAck<A> = A extends { reply: "ack" } ? Ack : Empty;

export type State = "connecting" | "open" | "reconnecting" | "closed";
