// Small pure helpers: DOM building, time formatting, safe text rendering.
import { mentions, parseBody } from './markup.js';
import { personTitle } from './names.js';

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

/**
 * Render a message body as DOM from markup.js tokens: text nodes and a few elements
 * (code, strong, em, safe links, mentions). Never touches innerHTML, so markup in a
 * body shows as text.
 */
export function renderBody(text, me) {
  const frag = document.createDocumentFragment();
  const blocks = parseBody(text);
  for (const block of blocks) {
    if (block.type === 'code') {
      frag.append(h('pre', { class: 'msg-pre' }, h('code', {}, block.text)));
      continue;
    }
    for (const t of block.tokens) frag.append(inlineNode(t, me));
  }
  return { node: frag, mentioned: mentions(blocks, me) };
}

function inlineNode(t, me) {
  switch (t.type) {
    case 'code': return h('code', { class: 'msg-code' }, t.text);
    case 'bold': return h('strong', {}, t.text);
    case 'italic': return h('em', {}, t.text);
    case 'link': return h('a', { href: t.href, target: '_blank', rel: 'noopener noreferrer nofollow' }, t.text);
    case 'mention': {
      const isMe = t.user.toLowerCase() === me.toLowerCase() || t.user.toLowerCase() === 'room';
      // The text stays what the author wrote (search highlights index into it); the
      // person's display name shows on hover.
      return h('span', { class: isMe ? 'mention mention-me' : 'mention', title: t.user.toLowerCase() === 'room' ? null : personTitle(t.user) }, t.text);
    }
    default: return document.createTextNode(t.text);
  }
}
