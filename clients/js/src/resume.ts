import type { SystemMessage } from "./types.js";

/** System messages after which the user is no longer in the room (when they name the user). */
export const GONE = new Set(["removeMember", "leaveRoom", "declineInvitation", "cancelInvitation"]);
/** System messages after which the room is gone for everybody. */
export const ENDS = new Set(["dismissRoom"]);
/** The auth frame's limits (protocol §1.2): a resume map beyond them is cut, recent rooms kept. */
export const MAX_RESUME_ROOMS = 1024;
export const MAX_RESUME_BYTES = 48 * 1024;

export interface Resync {
  room: string;
  seq: number;
}

/** Per room, the seq of the last message delivered (`seqs`, in order of recent activity) or,
 * until one is, the room's seq at connect time (`floors`). The same rules as the Python
 * client's `ResumeState` (clients/resume.py). Pure: no I/O. */
export class ResumeState {
  seqs = new Map<string, number>();
  floors = new Map<string, number>();
  user: string | null = null;

  constructor(resume?: Record<string, number>) {
    for (const [room, seq] of Object.entries(resume ?? {})) this.seqs.set(room, seq);
  }

  lastSeqs(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [r, s] of this.floors) out[r] = s;
    for (const [r, s] of this.seqs) out[r] = s;
    return out;
  }

  last(room: string): number | undefined {
    return this.seqs.get(room) ?? this.floors.get(room);
  }

  knows(room: string): boolean {
    return this.seqs.has(room) || this.floors.has(room);
  }

  /** Whether `message` is new (then it is recorded as delivered); false for a seq already
   * delivered, as a replay overlapping live messages repeats them. */
  accept(message: SystemMessage): boolean {
    const room = message.room;
    const last = this.seqs.get(room);
    if (last !== undefined) {
      if (message.seq <= last) return false;
      this.seqs.delete(room); // re-inserted last: ordered by recent activity
    }
    this.seqs.set(room, message.seq);
    this.floors.delete(room);
    return true;
  }

  /** After delivery: whether the room is over for this client (nothing more to resume). */
  ends(message: SystemMessage): boolean {
    return (GONE.has(message.type) && this.user !== null && message.targets.includes(this.user)) || ENDS.has(message.type);
  }

  forget(room: string): void {
    this.seqs.delete(room);
    this.floors.delete(room);
  }

  resync(resync: Resync): void {
    this.floors.delete(resync.room);
    if (resync.seq === 0) this.forget(resync.room);
    else this.seqs.set(resync.room, resync.seq);
  }

  created(room: string): void {
    if (!this.seqs.has(room) && !this.floors.has(room)) this.floors.set(room, 0);
  }

  untracked(rooms: string[]): string[] {
    return rooms.filter((room) => !this.knows(room));
  }
}

/** The resume map to send and the rooms left out: the most recently active rooms that fit. */
export function fitResume(resume: Record<string, number>): [Record<string, number>, string[]] {
  const rooms = Object.keys(resume);
  const kept = new Set<string>();
  let size = 0;
  for (let i = rooms.length - 1; i >= 0; i--) {
    size += new TextEncoder().encode(rooms[i]).length + 12;
    if (kept.size === MAX_RESUME_ROOMS || size > MAX_RESUME_BYTES) break;
    kept.add(rooms[i]);
  }
  if (kept.size === rooms.length) return [{ ...resume }, []];
  const out: Record<string, number> = {};
  const left: string[] = [];
  for (const r of rooms) {
    if (kept.has(r)) out[r] = resume[r];
    else left.push(r);
  }
  return [out, left];
}
