// Per-room client state, and the sidebar / online list / title that show it.

import { h, icon, hueClass, initial } from './format.js';
import { RoomStream } from './roomstream.js';
import { titleWithCount, totals } from './attention.js';
import { displayName, dmLabel, person } from './names.js';

const $ = (id) => document.getElementById(id);

export class Room {
  constructor({
    slug, name, kind, unread = 0, mentions = 0, notify = 'all', members = null, last_seq: lastSeq = 0,
  }) {
    this.slug = slug;
    this.name = name; // a DM's is the others' display names, see below
    this.kind = kind;
    this.unread = unread;
    this.mentions = mentions; // unread messages that mention me (or @room)
    this.notify = notify; // 'all' | 'mentions' | 'none' (DMs: always 'all')
    this.members = members; // DMs: every member's username
    this.holdRead = false; // "mark unread": do not mark it read again until left
    // Events applied in seq order (lastSeq: the last one applied, or known for rooms
    // never opened); `loading` holds events back while the latest page is fetched.
    this.stream = new RoomStream({ lastSeq });
    this.unreadBase = lastSeq; // events up to here are already counted in `unread`
    this.readSent = 0;
    this.timeline = null;
    this.syncing = false;
    this.syncTimer = null;
    this.draft = '';
  }

  /** A DM is named after the other members as people see them (display names). */
  get name() { return this.kind === 'dm' && this.members ? dmLabel(this.members, this.serverName) : this.serverName; }

  set name(value) { this.serverName = value; }

  get lastSeq() { return this.stream.lastSeq; }

  set lastSeq(seq) { this.stream.lastSeq = seq; }

  get loading() { return this.stream.loading; }

  set loading(value) { this.stream.loading = value; }
}

const roomItems = new Map(); // slug -> {li, link, name, kindIcon, badge, count, ...}

/** The icon before a room's name: # public, a lock private, a person for a DM. */
export function kindIconName(kind) {
  return kind === 'private' ? 'lock' : kind === 'dm' ? 'at' : 'hash';
}

function roomItem(room) {
  let item = roomItems.get(room.slug);
  if (item) return item;
  const kindIcon = icon('hash');
  const name = h('span', { class: 'room-name' });
  const count = h('span', { class: 'badge-count' });
  const badge = h('span', { class: 'badge' }, count, h('span', { class: 'sr-only' }, ' unread'));
  const mentionCount = h('span', { class: 'mention-count' });
  const mentionBadge = h('span', { class: 'mention-badge', title: 'Mentions of you' },
    '@', mentionCount, h('span', { class: 'sr-only' }, ' mentioning you'));
  const avatar = h('span', { class: 'avatar avatar-xs', 'aria-hidden': 'true' });
  const dot = h('span', { class: 'presence-dot' });
  const link = h('a', { class: 'room-link', 'data-slug': room.slug }, kindIcon, name, mentionBadge, badge);
  item = { li: h('li', {}, link), link, name, kindIcon, badge, count, mentionBadge, mentionCount, avatar, dot };
  roomItems.set(room.slug, item);
  return item;
}

/**
 * Update the sidebar in place, so keyboard focus on a room link survives: rooms in
 * one list, direct messages (named after the others, with an online dot) in another.
 */
export function renderRooms(rooms, currentSlug, { me = '', online = new Set() } = {}) {
  let otherUnread = false;
  const wanted = { rooms: [], dms: [] };
  for (const room of rooms.values()) {
    const item = roomItem(room);
    const active = room.slug === currentSlug;
    const showBadge = room.unread > 0 && !active;
    const showMentions = room.mentions > 0 && !active && room.kind !== 'dm';
    otherUnread ||= showBadge;
    item.link.href = `/rooms/${encodeURIComponent(room.slug)}`;
    item.link.classList.toggle('has-unread', showBadge);
    item.link.classList.toggle('has-mention', showMentions);
    if (active) item.link.setAttribute('aria-current', 'page');
    else item.link.removeAttribute('aria-current');
    if (room.kind === 'dm') {
      const others = (room.members ?? []).filter((u) => u !== me);
      const first = others[0] ?? room.name;
      const isOnline = others.some((u) => online.has(u));
      if (item.kindIcon.isConnected) item.kindIcon.remove();
      item.avatar.className = `avatar avatar-xs ${hueClass(first)}${others.length > 1 ? ' is-group' : ''}`;
      item.avatar.replaceChildren(others.length > 1 ? String(others.length) : initial(displayName(first)), item.dot);
      item.dot.hidden = !isOnline;
      item.link.classList.toggle('is-online', isOnline);
      if (!item.avatar.isConnected) item.link.prepend(item.avatar);
      item.link.title = isOnline ? `${room.name} (online)` : room.name;
    } else {
      item.kindIcon.className = `icon icon-${kindIconName(room.kind)}`;
    }
    if (item.name.textContent !== room.name) item.name.textContent = room.name;
    item.count.textContent = room.unread > 99 ? '99+' : String(room.unread);
    item.badge.hidden = !showBadge;
    item.mentionCount.textContent = room.mentions > 99 ? '99+' : String(room.mentions);
    item.mentionBadge.hidden = !showMentions;
    wanted[room.kind === 'dm' ? 'dms' : 'rooms'].push(item.li);
  }
  for (const [slug, item] of roomItems) {
    if (!rooms.has(slug)) {
      item.li.remove();
      roomItems.delete(slug);
    }
  }
  for (const [id, items] of [['room-list', wanted.rooms], ['dm-list', wanted.dms]]) {
    const list = $(id);
    if (!list) continue;
    const shown = [...list.children];
    if (shown.length !== items.length || shown.some((li, i) => li !== items[i])) {
      list.replaceChildren(...items);
    }
  }
  const empty = $('dm-empty');
  if (empty) empty.hidden = wanted.dms.length > 0;
  $('sidebar-unread-dot').hidden = !otherUnread;
}

let faviconUnread = null;
/**
 * "(3) #general · chatapp": the count is every room's unread messages; the favicon
 * gets a dot while anything is unread.
 */
export function renderTitle(rooms, current) {
  const { unread } = totals(rooms.values());
  const label = current ? (current.kind === 'dm' ? current.name : `#${current.name}`) : null;
  document.title = titleWithCount(unread, label ? `${label} · chatapp` : 'chatapp');
  const dot = unread > 0;
  if (dot !== faviconUnread) {
    faviconUnread = dot;
    const link = document.querySelector('link[rel="icon"]');
    if (link) link.href = `/static/${dot ? 'favicon-unread.svg' : 'favicon.svg'}`;
  }
}

let onlineShown = null; // what the online list shows, to skip needless redraws

/**
 * The online list; `viewing` (a Set) marks who has the current room open now
 * (an extension), and the header counts them.
 */
export function renderOnline(online, me, viewing = new Set()) {
  const names = [...online].sort((a, b) => a.localeCompare(b, undefined, { sensitivity: 'base' }));
  const here = names.filter((name) => viewing.has(name));
  const key = JSON.stringify([me, names.map(displayName), here]);
  if (key === onlineShown) return;
  onlineShown = key;
  $('online-list').replaceChildren(...names.map((name) => {
    const isHere = viewing.has(name);
    return h('li', { class: `online-user${isHere ? ' is-viewing' : ''}` },
      h('span', { class: `avatar avatar-sm ${hueClass(name)}`, 'aria-hidden': 'true' }, initial(displayName(name)), h('span', { class: 'presence-dot' })),
      person(name, 'online-name'),
      name === me ? h('span', { class: 'you-tag' }, 'you') : null,
      h('span', { class: `viewing-mark${isHere ? ' is-viewing' : ''}`, title: isHere ? 'Viewing this room now' : null },
        icon('eye'),
        isHere ? h('span', { class: 'sr-only' }, ', viewing this room') : null));
  }));
  $('online-count').textContent = String(names.length);
  $('online-heading-count').textContent = String(names.length);
  const counter = viewingCounter();
  counter.number.textContent = String(here.length);
  counter.el.classList.toggle('is-empty', here.length === 0);
}

let counterEls = null;
/** "N viewing" in the online list's header, added once (always there: no shift). */
function viewingCounter() {
  if (!counterEls) {
    const number = h('span', { class: 'viewing-num' }, '0');
    const el = h('span', { class: 'viewing-count is-empty', id: 'online-viewing-count', title: 'People with this room open now' },
      h('span', { class: 'sr-only' }, ', '), icon('eye'), number, ' viewing');
    $('online-heading').append(el);
    counterEls = { el, number };
  }
  return counterEls;
}
