// Per-room client state, and the sidebar / online list / title that show it.

import { h, icon, hueClass, initial } from './format.js';
import { RoomStream } from './roomstream.js';

const $ = (id) => document.getElementById(id);

export class Room {
  constructor({ slug, name, kind, unread = 0, last_seq: lastSeq = 0 }) {
    this.slug = slug;
    this.name = name;
    this.kind = kind;
    this.unread = unread;
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

  get lastSeq() { return this.stream.lastSeq; }

  set lastSeq(seq) { this.stream.lastSeq = seq; }

  get loading() { return this.stream.loading; }

  set loading(value) { this.stream.loading = value; }
}

const roomItems = new Map(); // slug -> {li, link, name, kindIcon, badge, count}

/** Update the sidebar in place, so keyboard focus on a room link survives. */
export function renderRooms(rooms, currentSlug) {
  const list = $('room-list');
  let otherUnread = false;
  const wanted = [];
  for (const room of rooms.values()) {
    let item = roomItems.get(room.slug);
    if (!item) {
      const kindIcon = icon('hash');
      const name = h('span', { class: 'room-name' });
      const count = h('span', { class: 'badge-count' });
      const badge = h('span', { class: 'badge' }, count, h('span', { class: 'sr-only' }, ' unread'));
      const link = h('a', { class: 'room-link', 'data-slug': room.slug }, kindIcon, name, badge);
      item = { li: h('li', {}, link), link, name, kindIcon, badge, count };
      roomItems.set(room.slug, item);
    }
    const active = room.slug === currentSlug;
    const showBadge = room.unread > 0 && !active;
    otherUnread ||= showBadge;
    item.link.href = `/rooms/${encodeURIComponent(room.slug)}`;
    item.link.classList.toggle('has-unread', showBadge);
    if (active) item.link.setAttribute('aria-current', 'page');
    else item.link.removeAttribute('aria-current');
    item.kindIcon.className = `icon icon-${room.kind === 'private' ? 'lock' : 'hash'}`;
    if (item.name.textContent !== room.name) item.name.textContent = room.name;
    item.count.textContent = room.unread > 99 ? '99+' : String(room.unread);
    item.badge.hidden = !showBadge;
    wanted.push(item.li);
  }
  for (const [slug, item] of roomItems) {
    if (!rooms.has(slug)) {
      item.li.remove();
      roomItems.delete(slug);
    }
  }
  const shown = [...list.children];
  if (shown.length !== wanted.length || shown.some((li, i) => li !== wanted[i])) {
    list.replaceChildren(...wanted);
  }
  $('sidebar-unread-dot').hidden = !otherUnread;
}

/** "(3) #general · chatapp": the badge counts unread messages in every room. */
export function renderTitle(rooms, current) {
  let total = 0;
  for (const r of rooms.values()) total += r.unread;
  const base = current ? `#${current.name} · chatapp` : 'chatapp';
  document.title = total > 0 ? `(${total}) ${base}` : base;
}

let onlineShown = null; // what the online list shows, to skip needless redraws

/**
 * The online list; `viewing` (a Set) marks who has the current room open now
 * (an extension), and the header counts them.
 */
export function renderOnline(online, me, viewing = new Set()) {
  const names = [...online].sort((a, b) => a.localeCompare(b, undefined, { sensitivity: 'base' }));
  const here = names.filter((name) => viewing.has(name));
  const key = JSON.stringify([me, names, here]);
  if (key === onlineShown) return;
  onlineShown = key;
  $('online-list').replaceChildren(...names.map((name) => {
    const isHere = viewing.has(name);
    return h('li', { class: `online-user${isHere ? ' is-viewing' : ''}` },
      h('span', { class: `avatar avatar-sm ${hueClass(name)}`, 'aria-hidden': 'true' }, initial(name), h('span', { class: 'presence-dot' })),
      h('span', { class: 'online-name' }, name),
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
