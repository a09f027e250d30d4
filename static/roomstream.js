// One room's event stream on the client (SPEC §6, §9), without the DOM: events are
// applied strictly in seq order, each exactly once; a gap holds later events back and
// asks for `sync`; the room's messages are the projection of the events applied.
// chat.js wires it to the socket and the timeline; tests run it under `node --test`.

/** Room events: everything else that carries `room` (typing, read, ...) is not one. */
export const ROOM_EVENT_TYPES = new Set(['message', 'message_edited', 'message_deleted', 'reaction']);

export function isRoomEvent(ev) {
  return ev !== null && typeof ev === 'object' && ROOM_EVENT_TYPES.has(ev.type)
    && typeof ev.room === 'string' && Number.isInteger(ev.seq) && ev.seq > 0;
}

export class RoomStream {
  /**
   * @param {object} opts
   * @param {number} [opts.lastSeq] the last seq already reflected (e.g. from `hello`)
   * @param {(change: object) => void} [opts.onChange] told of every applied change:
   *   {kind: 'added'|'edited'|'deleted'|'reacted', message?, id?, event}
   */
  constructor({ lastSeq = 0, onChange = () => {}, limit = 5000 } = {}) {
    this.lastSeq = lastSeq;
    this.pending = new Map(); // seq -> event that arrived ahead of a gap
    this.messages = new Map(); // id -> message (the loaded window of the room)
    this.deleted = new Set(); // ids seen deleted, so a reply can say so
    this.limit = limit; // a tab open for weeks keeps only the newest messages
    this.onChange = onChange;
    this.loading = false; // a page is being fetched: hold events until `reset`
  }

  /** True while events wait behind a gap (the caller should `sync`). */
  get hasGap() {
    return this.pending.size > 0;
  }

  /**
   * Offer one event (live, from an ack, or from `synced`). Returns true when the
   * caller should ask for `sync` (a gap is open and no page load will close it).
   */
  offer(ev) {
    if (!isRoomEvent(ev) || ev.seq <= this.lastSeq) return false; // a duplicate
    this.pending.set(ev.seq, ev);
    if (this.loading) return false;
    this.drain();
    return this.hasGap;
  }

  /** Apply a `synced` reply. Returns 'reload' when the server could not recover. */
  synced(reply) {
    if (reply.recovered === false) {
      this.pending.clear();
      return 'reload';
    }
    for (const ev of reply.events ?? []) {
      if (isRoomEvent(ev) && ev.seq > this.lastSeq) this.pending.set(ev.seq, ev);
    }
    if (!this.loading) this.drain();
    return this.hasGap ? 'gap' : 'ok';
  }

  /**
   * Replace the window with a freshly loaded latest page whose newest event is
   * `lastSeq` (the room's `last_seq` when the page was read), call `render` (the page
   * can be drawn and quotes looked up), then apply what arrived meanwhile.
   */
  reset(messages, lastSeq, { render = () => {} } = {}) {
    this.messages = new Map(messages.map((m) => [m.id, m]));
    this.lastSeq = Math.max(lastSeq, ...messages.map((m) => m.seq), 0);
    this.loading = false;
    render(); // show the page before the events that follow it are applied
    this.drain();
  }

  /** Older messages loaded above the window (they are already reflected in seqs). */
  addOlder(messages) {
    for (const m of messages) {
      if (!this.messages.has(m.id)) this.messages.set(m.id, m);
    }
  }

  /**
   * Our own message came back in an `ack`: if it is the next event apply it now
   * ('applied'); if it is already applied ('duplicate'); else earlier events are on
   * their way ('wait').
   */
  ack(message) {
    if (message.seq <= this.lastSeq) return 'duplicate';
    if (message.seq === this.lastSeq + 1 && !this.loading) {
      this.offer({ type: 'message', room: message.room, seq: message.seq, message });
      return 'applied';
    }
    return 'wait';
  }

  drain() {
    for (const seq of this.pending.keys()) {
      if (seq <= this.lastSeq) this.pending.delete(seq);
    }
    while (this.pending.has(this.lastSeq + 1)) {
      const ev = this.pending.get(this.lastSeq + 1);
      this.pending.delete(ev.seq);
      this.lastSeq = ev.seq;
      this.apply(ev);
    }
  }

  apply(ev) {
    switch (ev.type) {
      case 'message': {
        if (!ev.message) return;
        this.messages.set(ev.message.id, ev.message);
        if (this.messages.size > this.limit) this.dropOldest();
        this.onChange({ kind: 'added', message: ev.message, event: ev });
        return;
      }
      case 'message_edited': {
        if (!ev.message) return;
        const known = this.messages.has(ev.message.id);
        if (known) this.messages.set(ev.message.id, ev.message);
        this.onChange({ kind: 'edited', message: ev.message, known, event: ev });
        return;
      }
      case 'message_deleted': {
        const known = this.messages.delete(ev.id);
        this.deleted.add(ev.id);
        this.onChange({ kind: 'deleted', id: ev.id, known, event: ev });
        return;
      }
      case 'reaction': {
        const m = this.messages.get(ev.id);
        if (m) {
          const updated = { ...m, reactions: ev.reactions ?? [] };
          this.messages.set(ev.id, updated);
          this.onChange({ kind: 'reacted', message: updated, known: true, event: ev });
        } else {
          this.onChange({ kind: 'reacted', id: ev.id, known: false, event: ev });
        }
        return;
      }
      default:
    }
  }

  dropOldest() {
    let oldest = null;
    for (const m of this.messages.values()) {
      if (oldest === null || m.seq < oldest.seq) oldest = m;
    }
    this.messages.delete(oldest.id);
  }

  /** A loaded message; null when it was deleted; undefined when not loaded. */
  lookup(id) {
    if (this.deleted.has(id)) return null;
    return this.messages.get(id);
  }

  /** The window's messages, oldest first. */
  ordered() {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }
}

/**
 * What a reply shows of the message it answers: its author and the start of its
 * body, or that it was deleted / is not loaded.
 */
export function quoteOf(message, maxChars = 80) {
  if (!message) return { deleted: true, author: null, text: 'deleted message' };
  let flat = String(message.body ?? '').replace(/\s+/g, ' ').trim();
  // A message of files alone is quoted by their names.
  if (!flat && message.attachments?.length) flat = `📎 ${message.attachments.map((a) => a.name).join(', ')}`;
  const chars = [...flat];
  const text = chars.length > maxChars ? `${chars.slice(0, maxChars - 1).join('')}…` : flat;
  return { deleted: false, author: message.author, text };
}
