// What deserves the reader's attention, without a DOM: mentions (and the composer's
// @ type-ahead), where unread messages begin, which messages notify, the tab title.

const MENTION_CHARS = /[A-Za-z0-9_.-]/;

/**
 * The `@name` being typed just before the caret: {start, query} (start: the index of
 * the @), or null. An @ glued to a word before it (an e-mail address) does not count.
 */
export function mentionQuery(text, caret) {
  let i = caret;
  while (i > 0 && MENTION_CHARS.test(text[i - 1])) i -= 1;
  if (i === 0 || text[i - 1] !== '@') return null;
  const at = i - 1;
  if (at > 0 && /[\w@.]/.test(text[at - 1])) return null;
  const query = text.slice(i, caret);
  return query.length <= 32 ? { start: at, query } : null;
}

/**
 * People whose username or display name starts with `query` (case-insensitively),
 * usernames first-matching first, then "room" (everyone) when it fits; at most `limit`.
 * `people`: [{username, display_name?}].
 */
export function mentionMatches(query, people, { me = null, limit = 8, room = true } = {}) {
  const q = query.toLowerCase();
  const scored = [];
  for (const p of people) {
    if (!p || p.username === me) continue;
    const user = p.username.toLowerCase();
    const display = (p.display_name ?? '').toLowerCase();
    let score = -1;
    if (user.startsWith(q)) score = 0;
    else if (display.startsWith(q) || display.split(/\s+/).some((w) => w.startsWith(q))) score = 1;
    if (score >= 0) scored.push({ score, p });
  }
  scored.sort((a, b) => a.score - b.score || a.p.username.localeCompare(b.p.username, undefined, { sensitivity: 'base' }));
  const out = scored.map((s) => s.p);
  if (room && 'room'.startsWith(q)) out.push({ username: 'room', display_name: 'Everyone in this room', everyone: true });
  return out.slice(0, limit);
}

/** The text with the @query at `start`..`caret` replaced by `@username `; the new caret. */
export function applyMention(text, start, caret, username) {
  const insert = `@${username} `;
  const after = text.slice(caret).replace(/^[A-Za-z0-9_.-]*/, '').replace(/^ /, '');
  return { text: text.slice(0, start) + insert + after, caret: start + insert.length };
}

/** Whether a message mentions `me` (by name or @room), by the server's `mentions`. */
export function mentionsMe(message, me) {
  const list = message?.mentions ?? [];
  const key = me.toLowerCase();
  return list.some((u) => u === 'room' || u.toLowerCase() === key);
}

/**
 * Whether a new message should raise a desktop notification: never one's own; DMs
 * always; otherwise by the room's setting (all, mentions, none).
 */
export function shouldNotify(room, message, me) {
  if (!message || message.author === me) return false;
  if (room.kind === 'dm') return true;
  if (room.notify === 'none') return false;
  if (room.notify === 'mentions') return mentionsMe(message, me);
  return true;
}

/**
 * The index in `messages` (ascending) of the first unread one, given the server's
 * unread count (messages by others past the read marker): null when none is unread
 * or the loaded page does not reach that far back (then: its first message).
 */
export function firstUnreadIndex(messages, unread, me) {
  if (!unread || unread <= 0 || !messages.length) return null;
  let left = unread;
  for (let i = messages.length - 1; i >= 0; i -= 1) {
    if (messages[i].author !== me) {
      left -= 1;
      if (left === 0) return i;
    }
  }
  return 0;
}

/** Unread messages and unread mentions over every room: {unread, mentions}. */
export function totals(rooms) {
  let unread = 0;
  let mentions = 0;
  for (const r of rooms) {
    unread += r.unread || 0;
    mentions += r.mentions || 0;
  }
  return { unread, mentions };
}

/** "(3) base", or just base with nothing unread; "99+" past 99. */
export function titleWithCount(total, base) {
  if (!total) return base;
  return `(${total > 99 ? '99+' : total}) ${base}`;
}

/** A DM's title for its viewer: the other members, or the room's name. */
export function dmName(members, me, fallback) {
  const others = (members ?? []).filter((u) => u !== me);
  return others.length ? others.join(', ') : fallback;
}
