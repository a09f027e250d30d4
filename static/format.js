// Small pure helpers: DOM building, time formatting, safe text rendering.

/** Create an element; children may be nodes or strings (always inserted as text). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function icon(name) {
  return h('span', { class: `icon icon-${name}`, 'aria-hidden': 'true' });
}

/** Length as the server counts it: Unicode code points, not UTF-16 units. */
export function codePoints(text) {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

/** A stable colour bucket for a username (12 hues defined in app.css). */
export function hueClass(name) {
  // FNV-1a: short, similar names ("bob", "carol") land on different hues.
  let hash = 0x811c9dc5;
  for (const ch of String(name)) hash = Math.imul(hash ^ ch.codePointAt(0), 0x01000193) >>> 0;
  return `hue-${hash % 12}`;
}

export function initial(name) {
  const first = [...String(name)][0] ?? '?';
  return first.toUpperCase();
}

/** crypto.randomUUID only exists in secure contexts; plain-http LAN installs need a fallback. */
export function newNonce() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const exactFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const dayYearFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric', year: 'numeric' });

export const clockTime = (date) => timeFmt.format(date);
export const exactTime = (date) => exactFmt.format(date);

export function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

export function minuteKey(date) {
  return `${dayKey(date)} ${date.getHours()}:${date.getMinutes()}`;
}

export function dayLabel(date, now = new Date()) {
  const today = dayKey(now);
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (dayKey(date) === today) return 'Today';
  if (dayKey(date) === dayKey(yesterday)) return 'Yesterday';
  return date.getFullYear() === now.getFullYear() ? dayFmt.format(date) : dayYearFmt.format(date);
}

/** "just now", "5 min ago", then the clock time (day separators carry the date). */
export function relativeTime(date, now = Date.now()) {
  const seconds = Math.round((now - date.getTime()) / 1000);
  if (seconds < 45) return 'just now';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  return clockTime(date);
}

export function timeElement(date, { relative = true, cls = 'msg-time' } = {}) {
  const el = h('time', {
    class: relative ? `${cls} rel` : cls,
    datetime: date.toISOString(),
    title: exactTime(date),
  });
  el.textContent = relative ? relativeTime(date) : clockTime(date);
  return el;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?'")\]}]+$/;

/**
 * Render a message body as DOM: text nodes, safe http(s) links, and @mentions.
 * Never touches innerHTML, so markup in a body shows as text.
 */
export function renderBody(text, me) {
  const frag = document.createDocumentFragment();
  let mentioned = false;
  let last = 0;
  const pushText = (chunk) => {
    if (!chunk) return;
    const parts = chunk.split(/(@[A-Za-z0-9_.-]{3,32})/);
    for (let i = 0; i < parts.length; i += 1) {
      if (!parts[i]) continue;
      if (i % 2 === 1) {
        // "Thanks @alice." — a sentence's full stop is not part of the name.
        let name = parts[i];
        const stop = name.match(/[.-]+$/);
        if (stop && name.length - stop[0].length > 3) name = name.slice(0, -stop[0].length);
        const isMe = name.slice(1).toLowerCase() === me.toLowerCase();
        mentioned ||= isMe;
        frag.append(h('span', { class: isMe ? 'mention mention-me' : 'mention' }, name));
        if (name !== parts[i]) frag.append(document.createTextNode(parts[i].slice(name.length)));
      } else {
        frag.append(document.createTextNode(parts[i]));
      }
    }
  };
  for (const match of text.matchAll(URL_RE)) {
    let url = match[0];
    const trail = url.match(TRAILING);
    if (trail) {
      // Keep a closing paren that balances one inside the URL (wiki links).
      let cut = trail[0];
      if (cut.startsWith(')') && url.split('(').length > url.split(')').length - 1) cut = cut.slice(1);
      url = url.slice(0, url.length - cut.length);
    }
    pushText(text.slice(last, match.index));
    let safe = null;
    try {
      const parsed = new URL(url);
      if (parsed.protocol === 'http:' || parsed.protocol === 'https:') safe = parsed.href;
    } catch { /* not a URL after all */ }
    if (safe) {
      frag.append(h('a', { href: safe, target: '_blank', rel: 'noopener noreferrer nofollow' }, url));
    } else {
      frag.append(document.createTextNode(url));
    }
    last = match.index + url.length;
  }
  pushText(text.slice(last));
  return { node: frag, mentioned };
}
