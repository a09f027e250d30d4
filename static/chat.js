// The chat page: keeps every room's event stream in seq order over one
// websocket (SPEC §6), an outbox of messages not yet confirmed, and the UI.

import { api, ApiError, goToLogin } from './api.js';
import { Socket } from './socket.js';
import { Timeline } from './timeline.js';
import { h, hueClass, newNonce } from './format.js';
import { Composer } from './composer.js';
import { Outbox } from './outbox.js';
import {
  Room, kindIconName, renderOnline as drawOnline, renderRooms as drawRooms, renderTitle,
} from './rooms.js';
import { firstUnreadIndex, mentionsMe, shouldNotify } from './attention.js';
import { MentionBox } from './mention-box.js';
import { setupNewDm } from './people.js';
import { isRoomEvent, quoteOf } from './roomstream.js';
import { MessageActions } from './message-actions.js';
import { setupSearch } from './search.js';
import { setupRoomDialogs } from './dialogs.js';
import { displayName, learnPeople, refreshNames, setMe } from './names.js';
import {
  announce, closeDrawers, notify, setupChrome, setupNotifyButton, toast,
} from './ui.js';

const PAGE = 50;
const TYPING_EVERY_MS = 2000;
const TYPING_SHOWN_MS = 4000;
const PIN_SLACK_PX = 48;
// "Viewing this room now" (an extension): a viewer counts for this long after their
// last `viewing`; the server relays one per user and room per 5 s.
const VIEWING_SEEN_MS = 45_000;
const VIEWING_RELAY_MS = 5000;
const VIEWING_ANSWERED_MS = 1500;

const $ = (id) => document.getElementById(id);
const body = document.body;
const me = { id: Number(body.dataset.userId), username: body.dataset.username, isAdmin: false };
setMe(me.username);

const els = {
  composerForm: $('composer'),
  roomList: $('room-list'),
  onlineList: $('online-list'),
  roomName: $('room-name'),
  roomKindIcon: $('room-kind-icon'),
  roomKindLabel: $('room-kind-label'),
  scroller: $('messages'),
  host: $('timeline-host'),
  pill: $('new-pill'),
  typing: $('typing'),
  banner: $('conn-banner'),
  bannerText: $('conn-banner-text'),
  leaveBtn: $('leave-btn'),
};

const state = {
  current: body.dataset.room,
  rooms: new Map(),
  online: new Set(),
  epoch: null,
  ready: false, // hello received on the current connection
  everReady: false,
  outbox: new Outbox(`chatapp.outbox.${me.id}`),
  typers: new Map(), // room -> Map(user -> expires at)
  typingSentAt: new Map(), // room -> ms
  viewers: new Map(), // room -> Map(user -> last seen, ms): who has the room open
  viewingSentAt: new Map(), // room -> ms
  pinned: true,
  openAfterJoin: null,
  preview: null, // a public room shown read-only before joining
};

const composer = new Composer($('composer'), {
  onSubmit: submitComposer, onTyping: sendTyping, onEditLast: editLastMessage, onError: (t) => toast(t),
});

const actions = new MessageActions({
  me: me.username,
  isAdmin: () => me.isAdmin,
  onReact: reactTo,
  onReply: (m) => composer.replyTo(m, quoteOf(m)),
  onEdit: (m) => composer.edit(m),
  onDelete: deleteMessage,
  onShowEdits: showEdits,
  onCopyLink: copyLink,
  onMarkUnread: markUnread,
});

new MentionBox($('composer'), composer.input, {
  me: me.username,
  people: () => peopleHere(),
  onChange: () => composer.refresh(),
});

const socket = new Socket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`, {
  onEvent: handleEvent,
  onStatus: connectionStatus,
  onAuthLost: goToLogin,
  onTick: sendViewing,
});

// ---------------------------------------------------------------- events

function handleEvent(ev) {
  if (isRoomEvent(ev)) {
    onRoomEvent(ev, { live: true });
    return;
  }
  switch (ev.type) {
    case 'hello': onHello(ev); break;
    case 'user_updated': namesChanged(learnPeople([ev.user])); break;
    case 'ack': onAck(ev); break;
    case 'done': if (isRoomEvent(ev.event)) onRoomEvent(ev.event, { live: false }); break;
    case 'synced': onSynced(ev); break;
    case 'presence': onPresence(ev); break;
    case 'typing': onTyping(ev); break;
    case 'viewing': onViewing(ev); break;
    case 'read': onRead(ev); break;
    case 'notify': onNotifySetting(ev); break;
    case 'error': onError(ev); break;
    case 'room_joined': onRoomJoined(ev.room); break;
    case 'room_left': removeRoom(typeof ev.room === 'string' ? ev.room : ev.room?.slug); break;
    default: break; // pong and event types from the future
  }
}

function onHello(ev) {
  if (state.epoch !== null && ev.epoch !== state.epoch) {
    location.reload(); // the store was replaced: nothing we hold is valid
    return;
  }
  const reconnect = state.everReady;
  state.epoch = ev.epoch;
  me.isAdmin = Boolean(ev.user?.is_admin);
  namesChanged(learnPeople([ev.user]));
  loadPeople(); // names changed while we were away are not replayed
  state.ready = true;
  state.everReady = true;
  socket.healthy();
  connectionReady();

  const seen = new Set();
  for (const r of ev.rooms ?? []) {
    seen.add(r.slug);
    let room = state.rooms.get(r.slug);
    if (!room) {
      room = addRoom(r);
    } else {
      room.name = r.name;
      room.kind = r.kind;
      // A room we never opened has nothing on screen: jump to the server's position.
      if (!room.timeline) room.lastSeq = Math.max(room.lastSeq, r.last_seq);
    }
    room.unread = r.unread;
    room.mentions = r.mentions ?? 0;
    room.notify = r.notify ?? 'all';
    room.members = r.members ?? null;
    room.unreadBase = Math.max(room.unreadBase, r.last_seq);
    room.syncing = false;
  }
  for (const slug of [...state.rooms.keys()]) {
    if (!seen.has(slug)) removeRoom(slug);
  }
  for (const item of [...state.outbox.values()]) {
    if (!seen.has(item.room)) dropOutbox(item.nonce);
  }
  state.online = new Set(ev.online ?? []);

  for (const room of state.rooms.values()) {
    if (room.loading) continue;
    if (reconnect || room.timeline) requestSync(room);
  }
  const current = state.rooms.get(state.current);
  if (current) {
    renderHeader();
    if (!current.timeline) showRoom(current);
  }
  for (const item of state.outbox.values()) {
    if (item.state === 'pending') transmit(item);
  }
  renderRooms();
  renderOnline();
  maybeSendRead();
  sendViewing();
}

// Whether the changes being applied arrived live (notify, announce) or are catch-up.
let applyingLive = false;

function onRoomEvent(ev, { live }) {
  const room = state.rooms.get(ev.room);
  if (!room) return; // a room we are not in (any more)
  applyingLive = live;
  const gap = room.stream.offer(ev);
  applyingLive = false;
  if (gap) requestSync(room);
}

/** One change of a room's projection, in seq order (RoomStream's onChange). */
function onStreamChange(room, change) {
  switch (change.kind) {
    case 'added': onMessageAdded(room, change.message, change.event.seq, applyingLive); break;
    case 'edited':
    case 'reacted':
      if (change.message) room.timeline?.update(change.message);
      if (change.kind === 'edited' && applyingLive && room.slug === state.current && change.message.author !== me.username) {
        announce(`${change.message.author} edited a message`);
      }
      break;
    case 'deleted': {
      const focusGone = room.timeline?.rowOf(change.id)?.contains(document.activeElement);
      room.timeline?.remove(change.id);
      if (composer.mode?.message?.id === change.id) composer.clearMode();
      if (focusGone) composer.input.focus();
      break;
    }
    default:
  }
}

function onMessageAdded(room, m, seq, live) {
  const own = m.author === me.username;
  const isCurrent = room.slug === state.current;
  const wasPinned = isCurrent && isAtBottom();

  if (own && m.nonce && state.outbox.has(m.nonce)) dropOutbox(m.nonce);
  room.timeline?.append(m);
  if (!own) stopTyping(room.slug, m.author);

  if (!own && seq > room.unreadBase) {
    room.unreadBase = seq;
    if (!(isCurrent && wasPinned && document.visibilityState === 'visible' && !room.holdRead)) {
      room.unread += 1;
      if (mentionsMe(m, me.username)) room.mentions += 1;
    }
    // One notification per message (its tag: the user's other tabs show the same one).
    if (live && document.hidden && shouldNotify(room, m, me.username)) {
      const title = room.kind === 'dm' ? displayName(m.author) : `${displayName(m.author)} in #${room.name}`;
      notify(title, quoteOf(m, 200).text, `message-${m.id}`, () => openAt(room.slug, m.id));
    }
  }
  if (isCurrent) {
    if (wasPinned || own) scrollToBottom();
    else if (!own) els.pill.hidden = false;
    if (live && !own) announce(`${displayName(m.author)}: ${m.body.slice(0, 200)}`);
  }
  renderRooms();
  scheduleRead();
}

function addRoom(summary) {
  const room = new Room(summary);
  room.stream.onChange = (change) => onStreamChange(room, change);
  state.rooms.set(room.slug, room);
  return room;
}

function requestSync(room) {
  if (!state.ready || room.syncing || room === state.preview) return;
  room.syncing = true;
  socket.send({ type: 'sync', room: room.slug, after: room.lastSeq, ref: `sync:${room.slug}` });
  clearTimeout(room.syncTimer);
  // If the reply never comes (lost connection), allow the next gap to ask again.
  room.syncTimer = setTimeout(() => { room.syncing = false; }, 10_000);
}

function onSynced(ev) {
  const room = state.rooms.get(ev.room);
  if (!room) return;
  room.syncing = false;
  clearTimeout(room.syncTimer);
  applyingLive = false;
  const verdict = room.stream.synced(ev);
  if (verdict === 'reload') {
    if (room.timeline) {
      loadLatest(room, ev.last_seq);
    } else {
      room.lastSeq = Math.max(room.lastSeq, ev.last_seq);
      refreshUnread();
    }
    return;
  }
  if (verdict === 'gap') requestSync(room); // still a gap: ask for it
}

/** Server unread counts after we lost track (a sync that could not recover). */
async function refreshUnread() {
  try {
    const data = await api('/api/v1/rooms');
    for (const r of data.rooms ?? []) {
      const room = state.rooms.get(r.slug);
      if (!room) continue;
      room.unread = r.unread;
      room.unreadBase = Math.max(room.unreadBase, r.last_seq);
    }
    renderRooms();
  } catch { /* keep what we have */ }
}

function onAck(ev) {
  const m = ev.message;
  const item = state.outbox.get(ev.nonce);
  const room = m && state.rooms.get(m.room);
  if (!m || !room) {
    if (item) dropOutbox(ev.nonce);
    return;
  }
  // The ack may be this room's next event: shown in place now, the echo is a duplicate.
  applyingLive = false;
  const verdict = room.stream.ack(m);
  if (verdict === 'duplicate') {
    dropOutbox(ev.nonce); // the room event got here first
  } else if (verdict === 'wait' && item) {
    // Stored, but earlier events are still on their way: wait for them.
    item.state = 'sent';
    item.error = null;
    state.outbox.save();
    room.timeline?.updateOutbox(item);
  }
}

function onError(ev) {
  if (ev.nonce && state.outbox.has(ev.nonce)) {
    const item = state.outbox.get(ev.nonce);
    item.state = 'failed';
    item.error = ev.code === 'rate_limited' && ev.retry_after
      ? `you're sending too fast, try again in ${Math.ceil(ev.retry_after)} s`
      : (ev.message || ev.code);
    state.outbox.save();
    state.rooms.get(item.room)?.timeline?.updateOutbox(item);
    if (ev.code === 'rate_limited' && !item.autoRetried) {
      // One automatic retry once the limit allows; after that the Retry button.
      item.autoRetried = true;
      setTimeout(() => {
        if (state.outbox.get(item.nonce)?.state === 'failed') retryOutbox(item.nonce);
      }, Math.max(1, Number(ev.retry_after) || 1) * 1000 + Math.random() * 500);
    }
    return;
  }
  const ref = typeof ev.ref === 'string' ? ev.ref : '';
  if (ref.startsWith('sync:')) {
    const room = state.rooms.get(ref.slice(5));
    if (room) room.syncing = false;
  }
  if (ref.startsWith('typing:') || ref.startsWith('read:') || ref.startsWith('viewing:')) return; // not worth a toast
  if (ev.message) toast(ev.message);
}

function onPresence(ev) {
  if (typeof ev.user !== 'string') return;
  if (ev.online) state.online.add(ev.user);
  else {
    state.online.delete(ev.user);
    for (const seen of state.viewers.values()) seen.delete(ev.user);
  }
  renderOnline();
  renderRooms(); // DMs show who is online
}

/** Someone has `ev.room` open: their latest room is the one they are viewing. */
function onViewing(ev) {
  if (typeof ev.user !== 'string' || ev.user === me.username || !state.rooms.has(ev.room)) return;
  const now = Date.now();
  for (const [slug, seen] of state.viewers) {
    if (slug !== ev.room) seen.delete(ev.user);
  }
  if (!state.viewers.has(ev.room)) state.viewers.set(ev.room, new Map());
  const seen = state.viewers.get(ev.room);
  const arrived = now - (seen.get(ev.user) ?? -Infinity) >= VIEWING_SEEN_MS;
  seen.set(ev.user, now);
  renderOnline();
  // A newcomer to our room would otherwise wait for our next tick (up to 20 s) to see
  // us: answer once, unless we just announced ourselves (then they have it already).
  if (arrived && ev.room === state.current
      && now - (state.viewingSentAt.get(ev.room) ?? -Infinity) > VIEWING_ANSWERED_MS) {
    sendViewing();
  }
}

function onTyping(ev) {
  if (ev.user === me.username || !state.rooms.has(ev.room)) return;
  if (!state.typers.has(ev.room)) state.typers.set(ev.room, new Map());
  state.typers.get(ev.room).set(ev.user, Date.now() + TYPING_SHOWN_MS);
  renderTyping();
}

function stopTyping(slug, user) {
  if (state.typers.get(slug)?.delete(user)) renderTyping();
}

/** The read marker moved on another tab or device (or ours answered a mark unread). */
function onRead(ev) {
  const room = state.rooms.get(ev.room);
  if (!room || !Number.isInteger(ev.seq)) return;
  // Back ("mark unread" here or on another tab), or forward (read somewhere).
  const back = ev.seq < room.readSent || String(ev.ref ?? '').startsWith('read:unread:');
  room.unread = Number.isInteger(ev.unread) ? ev.unread : 0;
  room.mentions = Number.isInteger(ev.mentions) ? ev.mentions : 0;
  room.readSent = ev.seq;
  if (back && room.unread > 0) {
    // Marked unread: keep it so until the room is left, on this tab too.
    room.holdRead = true;
    const first = room.timeline?.messages.find((m) => m.seq > ev.seq && m.author !== me.username);
    if (first) room.timeline.setDivider(first.id);
  } else if (ev.seq >= room.lastSeq) {
    room.holdRead = false;
  }
  renderRooms();
}

/** "Mark unread" from a message: the marker goes back to just before it. */
function markUnread(m) {
  const room = state.rooms.get(m.room);
  if (!room || !state.ready) {
    toast('Not connected right now — try again in a moment.');
    return;
  }
  const seq = Math.max(0, m.seq - 1);
  room.holdRead = true;
  room.readSent = seq;
  const after = room.timeline?.messages.filter((x) => x.seq > seq && x.author !== me.username) ?? [];
  room.unread = after.length;
  room.mentions = after.filter((x) => mentionsMe(x, me.username)).length;
  if (after.length) room.timeline.setDivider(after[0].id);
  socket.send({ type: 'read', room: room.slug, seq, ref: `read:unread:${room.slug}` });
  renderRooms();
  announce('Marked unread');
}

function onNotifySetting(ev) {
  const room = state.rooms.get(ev.room);
  if (!room || typeof ev.notify !== 'string') return;
  room.notify = ev.notify;
  if (room === currentRoom()) renderHeader();
}

async function changeNotify(value) {
  const room = currentRoom();
  if (!room || room.kind === 'dm') return;
  const before = room.notify;
  room.notify = value;
  try {
    await api(`/api/v1/rooms/${encodeURIComponent(room.slug)}/notify`, { method: 'PUT', body: { notify: value } });
  } catch (err) {
    room.notify = before;
    renderHeader();
    toast(err.message);
  }
}

/** Open a room at one message (a notification's click). */
function openAt(slug, id) {
  window.focus();
  const room = state.rooms.get(slug);
  if (!room) return;
  room.pendingJump = id;
  openRoom(slug, { push: true });
  if (room.timeline?.rowOf(id)) {
    room.pendingJump = null;
    jumpTo(room, id);
  }
}

/** Everyone's display name (GET /api/v1/users), after each hello. */
async function loadPeople() {
  try {
    namesChanged(learnPeople((await api('/api/v1/users')).users));
  } catch {
    // Names stay as they were; the next hello tries again.
  }
}

/** A display name changed (user_updated, or learnt): every name on screen follows. */
function namesChanged(usernames) {
  if (!usernames.length) return;
  refreshNames(usernames);
  renderRooms();
  renderHeader();
  renderOnline();
  renderTyping();
}

/** Who can be @mentioned in the current room: its members (fetched once a minute). */
function peopleHere() {
  const room = currentRoom();
  if (!room) return [];
  const names = room.kind === 'dm' ? room.members ?? [] : room.memberList ?? [...state.online];
  return names.map((username) => ({ username, display_name: displayName(username) }));
}

async function fetchMembers(room) {
  if (room.kind === 'dm' || room === state.preview) return;
  if (room.membersAt && Date.now() - room.membersAt < 60_000) return;
  room.membersAt = Date.now();
  try {
    room.memberList = (await api(`/api/v1/rooms/${encodeURIComponent(room.slug)}/members`)).members ?? [];
  } catch {
    room.membersAt = 0;
  }
}

function onRoomJoined(r) {
  if (!r || typeof r.slug !== 'string') return;
  upsertRoom(r);
  if (state.openAfterJoin === r.slug) {
    state.openAfterJoin = null;
    openRoom(r.slug, { push: true });
  }
}

function upsertRoom(r) {
  let room = state.rooms.get(r.slug);
  if (!room) {
    room = addRoom({ ...r, unread: r.unread ?? 0, last_seq: r.last_seq ?? 0 });
  } else {
    room.name = r.name ?? room.name;
    room.kind = r.kind ?? room.kind;
    room.members = r.members ?? room.members;
    room.notify = r.notify ?? room.notify;
  }
  renderRooms();
  return room;
}

function removeRoom(slug) {
  const room = state.rooms.get(slug);
  if (!room) return;
  state.rooms.delete(slug);
  state.typers.delete(slug);
  state.viewers.delete(slug);
  state.viewingSentAt.delete(slug);
  for (const item of [...state.outbox.values()]) {
    if (item.room === slug) state.outbox.delete(item.nonce);
  }
  renderRooms();
  if (slug === state.current) {
    const next = state.rooms.get('general') ?? state.rooms.values().next().value;
    if (next) {
      openRoom(next.slug, { replace: true });
    } else {
      location.assign('/');
    }
  }
}

// ---------------------------------------------------------------- connection

let bannerTimer = null;
function connectionStatus(status) {
  if (status === 'open') return; // wait for hello
  state.ready = false;
  body.dataset.connection = status; // 'connecting' | 'closed'; 'ready' after hello
  for (const room of state.rooms.values()) room.syncing = false;
  state.typers.clear();
  renderTyping();
  if (status === 'closed' || state.everReady) {
    // A short grace period keeps a quick reconnect from flashing the banner.
    if (els.banner.hidden && !bannerTimer) {
      bannerTimer = setTimeout(() => {
        bannerTimer = null;
        if (!state.ready) {
          els.bannerText.textContent = navigator.onLine === false
            ? 'You are offline. Messages you send will go out when you reconnect.'
            : 'Connection lost. Reconnecting…';
          els.banner.hidden = false;
        }
      }, state.everReady ? 1200 : 3000);
    }
  }
}

function connectionReady() {
  body.dataset.connection = 'ready';
  clearTimeout(bannerTimer);
  bannerTimer = null;
  els.banner.hidden = true;
}

// ---------------------------------------------------------------- rooms & history

function currentRoom() {
  return state.rooms.get(state.current) ?? (state.preview?.slug === state.current ? state.preview : null);
}

function makeTimeline(room) {
  room.timeline = new Timeline({
    slug: room.slug,
    name: room.name,
    kind: room.kind,
    me: me.username,
    onRetry: retryOutbox,
    onDiscard: (nonce) => { dropOutbox(nonce); },
    onRetryLoad: () => loadLatest(room),
    onJump: (id) => jumpTo(room, id),
    lookup: (id) => room.stream.lookup(id),
    actions,
  });
  for (const item of state.outbox.values()) {
    if (item.room === room.slug) room.timeline.addOutbox(item);
  }
}

/** Put `room`'s timeline on screen, loading its latest page the first time. */
function showRoom(room) {
  if (!room.timeline) {
    makeTimeline(room);
    if (room.focusMessage) loadAround(room, room.focusMessage);
    else loadLatest(room);
  }
  els.host.replaceChildren(room.timeline.el);
  const saved = room.timeline.savedScroll;
  const divider = room.timeline.loaded ? placeDivider(room) : null;
  if (divider) scrollToDivider(divider);
  else if (saved === null) scrollToBottom();
  else els.scroller.scrollTop = saved;
  state.pinned = isAtBottom();
  fetchMembers(room);
  els.pill.hidden = true;
  observeTop(room);
  renderTyping();
}

async function loadLatest(room, knownLastSeq = 0) {
  room.loading = true;
  room.timeline.setStatus('loading');
  let data;
  try {
    data = await api(`/api/v1/rooms/${encodeURIComponent(room.slug)}/messages?limit=${PAGE}`);
  } catch (err) {
    room.loading = false;
    room.timeline.setStatus('error', err instanceof ApiError ? err.message : '');
    return;
  }
  if (state.rooms.get(room.slug) !== room && state.preview !== room) return; // left meanwhile
  const messages = data.messages ?? [];
  const isCurrent = room.slug === state.current;
  for (const m of messages) {
    if (m.nonce && state.outbox.has(m.nonce) && m.author === me.username) dropOutbox(m.nonce);
  }
  // The page shows each message as it is now; events after its newest message are
  // replayed over it (edits, reactions and deletes are idempotent).
  applyingLive = false;
  room.stream.reset(messages, messages.length ? knownLastSeq : Math.max(room.lastSeq, knownLastSeq), {
    render: () => room.timeline.reset(messages, Boolean(data.has_more)),
  });
  // Close the window between the page snapshot and the live stream.
  requestSync(room);
  if (isCurrent) {
    if (!room.pendingJump) await reachFirstUnread(room);
    if (state.current !== room.slug) return; // switched away meanwhile
    const divider = placeDivider(room);
    if (divider) scrollToDivider(divider);
    else scrollToBottom();
    room.timeline.savedScroll = null;
    observeTop(room);
    if (room.pendingJump && room.timeline.rowOf(room.pendingJump)) jumpTo(room, room.pendingJump);
    room.pendingJump = null;
    scheduleRead();
  }
}

/** Load older pages (up to 3) until the first unread message is on the page. */
async function reachFirstUnread(room) {
  for (let i = 0; i < 3; i += 1) {
    const tl = room.timeline;
    const others = tl.messages.filter((m) => m.author !== me.username).length;
    if (!room.unread || others >= room.unread || !tl.hasMore) return;
    while (tl.loadingOlder) await new Promise((resolve) => { setTimeout(resolve, 50); });
    await loadOlder(room);
  }
}

/** "New messages" above the first unread message on screen, when any is unread. */
function placeDivider(room) {
  const tl = room.timeline;
  tl.clearDivider();
  const i = firstUnreadIndex(tl.messages, room.unread, me.username);
  return i === null ? null : tl.setDivider(tl.messages[i].id);
}

/** Opening a room with unread messages starts at the first of them. */
function scrollToDivider(divider) {
  const gap = divider.getBoundingClientRect().top - els.scroller.getBoundingClientRect().top;
  els.scroller.scrollTop = Math.max(0, els.scroller.scrollTop + gap - 24);
  state.pinned = isAtBottom();
  els.pill.hidden = state.pinned;
}

async function loadOlder(room) {
  const tl = room.timeline;
  if (!tl || !tl.loaded || !tl.hasMore || tl.loadingOlder || room.loading || tl.oldestId === null) return;
  tl.loadingOlder = true;
  tl.setStatus('loading');
  try {
    const data = await api(`/api/v1/rooms/${encodeURIComponent(room.slug)}/messages?before=${tl.oldestId}&limit=${PAGE}`);
    const isCurrent = room.slug === state.current;
    const before = els.scroller.scrollHeight - els.scroller.scrollTop;
    room.stream.addOlder(data.messages ?? []);
    tl.prepend(data.messages ?? [], Boolean(data.has_more));
    // Keep the message the reader is looking at exactly where it was.
    if (isCurrent) els.scroller.scrollTop = els.scroller.scrollHeight - before;
  } catch (err) {
    tl.setStatus('error', err instanceof ApiError ? err.message : '');
  } finally {
    tl.loadingOlder = false;
  }
  // Still at the top with more to show (a short page, a tall screen): keep going.
  if (room.slug === state.current && tl.hasMore) requestAnimationFrame(() => checkTop(room));
}

let topObserver = null;
function observeTop(room) {
  topObserver?.disconnect();
  if (!('IntersectionObserver' in window)) return;
  topObserver = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadOlder(room);
  }, { root: els.scroller, rootMargin: '400px 0px 0px 0px' });
  topObserver.observe(room.timeline.top);
}

function checkTop(room) {
  if (els.scroller.scrollTop < 400) loadOlder(room);
}

function openRoom(slug, { push = false, replace = false } = {}) {
  const room = state.rooms.get(slug);
  if (!room) {
    location.assign(`/rooms/${encodeURIComponent(slug)}`);
    return;
  }
  closeDrawers(false);
  if (slug === state.current) return;
  const prev = currentRoom();
  if (prev) {
    prev.holdRead = false;
    prev.draft = composer.value;
    if (prev.timeline) prev.timeline.savedScroll = isAtBottom() ? null : els.scroller.scrollTop;
  }
  if (state.preview) endPreview();
  state.current = slug;
  body.dataset.room = slug;
  const url = `/rooms/${encodeURIComponent(slug)}`;
  if (push) history.pushState({ room: slug }, '', url);
  else if (replace) history.replaceState({ room: slug }, '', url);
  composer.value = room.draft;
  renderHeader();
  renderRooms();
  showRoom(room);
  renderOnline();
  sendViewing();
  if (matchMedia('(pointer: fine)').matches) composer.input.focus();
  scheduleRead();
}

function renderHeader() {
  const room = currentRoom();
  if (!room) return;
  const dm = room.kind === 'dm';
  els.roomName.textContent = room.name;
  els.roomKindIcon.className = `icon icon-${kindIconName(room.kind)}`;
  els.roomKindLabel.textContent = dm ? 'direct message' : room.kind === 'private' ? 'private room' : 'public room';
  composer.setRoomName(room.name, room.kind);
  els.scroller.setAttribute('aria-label', dm ? `Messages with ${room.name}` : `Messages in #${room.name}`);
  const member = room !== state.preview;
  $('leave-btn').hidden = dm || !member;
  $('add-member-btn').hidden = dm || !member;
  $('notify-select-wrap').hidden = dm || !member;
  $('notify-select').value = room.notify ?? 'all';
  room.timeline?.rename(room.name, room.kind);
  renderTitle(state.rooms, currentRoom());
}

function renderTyping() {
  const now = Date.now();
  let names = [];
  const typers = state.typers.get(state.current);
  if (typers) {
    for (const [user, until] of typers) {
      if (until <= now) typers.delete(user);
      else names.push(user);
    }
  }
  names = names.map(displayName).sort();
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = 'Several people are typing…';
  if (els.typing.textContent !== text) els.typing.textContent = text;
  els.typing.classList.toggle('is-active', Boolean(text));
}

function renderRooms() {
  drawRooms(state.rooms, state.current, { me: me.username, online: state.online });
  renderTitle(state.rooms, currentRoom());
}

function renderOnline() {
  drawOnline(state.online, me.username, viewersOfCurrent());
}

/** Who has the current room open: seen lately, and we do when connected as a member. */
function viewersOfCurrent() {
  const here = new Set();
  const now = Date.now();
  for (const [slug, seen] of state.viewers) {
    for (const [user, at] of seen) {
      if (now - at >= VIEWING_SEEN_MS) seen.delete(user);
    }
    if (!seen.size) state.viewers.delete(slug);
  }
  for (const user of state.viewers.get(state.current)?.keys() ?? []) here.add(user);
  const room = currentRoom();
  if (state.ready && room && room !== state.preview) here.add(me.username);
  return here;
}

// ---------------------------------------------------------------- scrolling & read state

function isAtBottom() {
  const s = els.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight <= PIN_SLACK_PX;
}

function scrollToBottom() {
  els.scroller.scrollTop = els.scroller.scrollHeight;
  state.pinned = true;
  els.pill.hidden = true;
}

function readingNow() {
  return document.visibilityState === 'visible' && isAtBottom();
}

let readTimer = null;
function scheduleRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(maybeSendRead, 250);
}

function maybeSendRead() {
  const room = currentRoom();
  if (!room || room === state.preview || !state.ready || room.loading || !room.timeline?.loaded) return;
  if (!readingNow() || room.holdRead) return;
  els.pill.hidden = true;
  if (room.lastSeq > room.readSent || room.unread > 0) {
    if (room.lastSeq > 0) {
      socket.send({ type: 'read', room: room.slug, seq: room.lastSeq, ref: `read:${room.slug}` });
    }
    room.readSent = room.lastSeq;
    room.unread = 0;
    room.mentions = 0;
    renderRooms();
  }
}

// ---------------------------------------------------------------- sending

function transmit(item) {
  if (!state.ready) return; // stays pending; sent again after the next hello
  const frame = { type: 'send', room: item.room, body: item.body, nonce: item.nonce };
  if (item.replyTo) frame.reply_to = item.replyTo;
  if (item.attachments?.length) frame.attachments = item.attachments.map((a) => a.id);
  socket.send(frame);
}

function dropOutbox(nonce) {
  const item = state.outbox.get(nonce);
  if (!item) return;
  state.outbox.delete(nonce);
  state.rooms.get(item.room)?.timeline?.removeOutbox(nonce);
}

function retryOutbox(nonce) {
  const item = state.outbox.get(nonce);
  if (!item) return;
  item.state = 'pending';
  item.error = null;
  state.outbox.save();
  state.rooms.get(item.room)?.timeline?.updateOutbox(item);
  transmit(item);
}

function submitComposer(text, mode, attachments = []) {
  if (mode?.kind === 'edit') editMessage(mode.message, text);
  else sendMessage(text, mode?.kind === 'reply' ? mode.message.id : null, attachments);
}

function sendMessage(text, replyTo = null, attachments = []) {
  const room = currentRoom();
  if (!room || room === state.preview) return;
  // The outbox keeps the upload objects: a resend (after a reconnect or a reload)
  // attaches the same uploads, and the pending row shows them meanwhile.
  const item = {
    nonce: newNonce(), room: room.slug, body: text, state: 'pending', error: null, ts: Date.now(), replyTo,
    attachments,
  };
  state.outbox.add(item);
  room.timeline?.addOutbox(item);
  room.draft = '';
  room.holdRead = false;
  scrollToBottom();
  transmit(item);
}

// ---------------------------------------------------------------- message actions

/** Send a room-event call (edit, delete, react); `done` or `error` answers it. */
function sendCall(frame) {
  if (!state.ready) {
    toast('Not connected right now — try again in a moment.');
    return false;
  }
  socket.send(frame);
  return true;
}

function editMessage(m, text) {
  if (text === m.body) return; // unchanged: nothing to do
  sendCall({ type: 'edit', room: m.room, id: m.id, body: text, ref: `edit:${m.id}` });
}

function editLastMessage() {
  const mine = currentRoom()?.timeline?.messages.findLast((m) => m.author === me.username);
  if (mine) composer.edit(mine);
}

function deleteMessage(m) {
  if (!window.confirm('Delete this message for everyone? This cannot be undone.')) return;
  sendCall({ type: 'delete', room: m.room, id: m.id, ref: `delete:${m.id}` });
}

function reactTo(m, emoji, on) {
  sendCall({ type: 'react', room: m.room, id: m.id, emoji, on, ref: `react:${m.id}` });
}

async function showEdits(m) {
  const dialog = $('edits-dialog');
  const list = $('edits-list');
  const status = $('edits-status');
  list.replaceChildren();
  status.hidden = false;
  status.textContent = 'Loading…';
  dialog.showModal();
  try {
    const data = await api(`/api/v1/messages/${m.id}/edits`);
    const edits = data.edits ?? [];
    status.hidden = edits.length > 0;
    status.textContent = edits.length ? '' : 'No earlier versions.';
    for (const e of edits) {
      list.append(h('li', { class: 'edits-item' },
        h('div', { class: 'edits-body' }, e.body),
        h('time', { class: 'msg-time', datetime: e.edited_at }, `replaced ${new Date(e.edited_at).toLocaleString()}`)));
    }
  } catch (err) {
    status.textContent = err instanceof ApiError ? err.message : 'Could not load the edit history.';
  }
}

// Permalinks and search results (SPEC §12): a room opened at one message.
const FILL_PAGE = 200;
const FILL_PAGES = 10; // newer messages joined up with the live end: at most 2,000

/** Open a room at a message: scroll to it when loaded, else load the room around it. */
function openMessage(slug, id) {
  const room = state.rooms.get(slug);
  if (!room) {
    location.assign(`/messages/${encodeURIComponent(id)}`); // not joined: the permalink page
    return;
  }
  if (room.timeline?.rowOf(id)) {
    openRoom(slug, { push: true });
    jumpTo(room, id);
    return;
  }
  room.focusMessage = id;
  if (room.timeline) {
    room.timeline.savedScroll = null;
    if (slug === state.current) loadAround(room, id);
    else room.timeline = null; // showRoom makes a fresh one, loaded around the message
  }
  openRoom(slug, { push: true });
}

/**
 * Load a room's timeline centred on a message: the page around it (older ones
 * load on scroll as usual), then the newer pages up to the newest message, so the
 * room's live stream carries on from there. Further back than FILL_PAGES pages of
 * newer messages: the latest page instead, and the reader is told.
 */
async function loadAround(room, id) {
  room.focusMessage = null;
  room.loading = true;
  room.timeline.setStatus('loading');
  const base = `/api/v1/rooms/${encodeURIComponent(room.slug)}/messages`;
  let messages;
  let hasOlder;
  let more;
  try {
    const data = await api(`${base}?around=${encodeURIComponent(id)}&limit=${PAGE}`);
    messages = data.messages ?? [];
    hasOlder = Boolean(data.has_more);
    more = Boolean(data.has_more_after);
    for (let i = 0; more && messages.length && i < FILL_PAGES; i += 1) {
      const next = await api(`${base}?after=${messages[messages.length - 1].id}&limit=${FILL_PAGE}`);
      messages = messages.concat(next.messages ?? []);
      more = Boolean(next.has_more);
    }
  } catch (err) {
    room.loading = false;
    if (err instanceof ApiError && err.status === 404) {
      toast('That message was deleted, or you may not read it.', { kind: 'info' });
      loadLatest(room);
    } else {
      room.timeline.setStatus('error', err instanceof ApiError ? err.message : '');
    }
    return;
  }
  if (state.rooms.get(room.slug) !== room && state.preview !== room) return; // left meanwhile
  if (more) {
    room.loading = false;
    toast('That message is too far back to open here; search finds it.', { kind: 'info' });
    loadLatest(room);
    return;
  }
  for (const m of messages) {
    if (m.nonce && state.outbox.has(m.nonce) && m.author === me.username) dropOutbox(m.nonce);
  }
  applyingLive = false;
  room.stream.reset(messages, messages.length ? 0 : room.lastSeq, {
    render: () => room.timeline.reset(messages, hasOlder),
  });
  requestSync(room);
  if (room.slug === state.current) {
    room.timeline.savedScroll = null;
    room.timeline.rowOf(id)?.scrollIntoView({ block: 'center' });
    state.pinned = isAtBottom();
    observeTop(room);
    jumpTo(room, id);
    scheduleRead();
  }
}

/** "Copy link" in a message's menu: its permalink on the clipboard. */
async function copyLink(m) {
  const url = `${location.origin}/messages/${m.id}`;
  try {
    await navigator.clipboard.writeText(url);
    toast('Link copied.', { kind: 'info', timeout: 2500 });
  } catch {
    toast(`Copy this link: ${url}`, { kind: 'info', timeout: 12000 });
  }
}

/** Scroll to a loaded message and highlight it for a moment (reply quotes). */
function jumpTo(room, id) {
  const row = room.timeline?.rowOf(id);
  if (!row) {
    toast('That message is further back: scroll up to load it.', { kind: 'info' });
    return;
  }
  row.scrollIntoView({ block: 'center', behavior: 'smooth' });
  row.classList.remove('is-highlight');
  void row.offsetWidth; // restart the highlight animation
  row.classList.add('is-highlight');
  row.querySelector('.msg-actions-btn')?.focus({ preventScroll: true });
}

function sendTyping() {
  const room = currentRoom();
  if (!room || room === state.preview || !state.ready) return;
  const now = Date.now();
  if (now - (state.typingSentAt.get(room.slug) ?? 0) < TYPING_EVERY_MS) return;
  state.typingSentAt.set(room.slug, now);
  socket.send({ type: 'typing', room: room.slug, ref: `typing:${room.slug}` });
}

let viewingTimer = null;
/** Tell the current room we have it open (visible tabs only; hidden ones just expire). */
function sendViewing() {
  clearTimeout(viewingTimer);
  viewingTimer = null;
  const room = currentRoom();
  if (!room || room === state.preview || !state.ready || document.visibilityState !== 'visible') return;
  const wait = (state.viewingSentAt.get(room.slug) ?? -Infinity) + VIEWING_RELAY_MS - Date.now();
  if (wait > 0) {
    // The server would drop it (back to a room within 5 s): send once it counts again.
    viewingTimer = setTimeout(sendViewing, wait + 100);
    return;
  }
  state.viewingSentAt.set(room.slug, Date.now());
  socket.send({ type: 'viewing', room: room.slug, ref: `viewing:${room.slug}` });
}

/** A public room opened by URL before joining: read-only until the Join button. */
function setupPreview() {
  const bar = $('join-bar');
  if (!bar) return;
  const d = bar.dataset;
  state.preview = new Room({ slug: state.current, name: d.name, kind: d.kind, last_seq: Number(d.lastSeq) || 0 });
  state.preview.stream.onChange = (change) => onStreamChange(state.preview, change);
  $('join-btn').addEventListener('click', async (ev) => {
    const btn = ev.currentTarget;
    btn.disabled = true;
    try {
      const joined = await api(`/api/v1/rooms/${encodeURIComponent(state.current)}/join`, { method: 'POST' });
      const preview = state.preview;
      endPreview();
      const room = upsertRoom(joined && joined.slug ? joined : preview);
      renderHeader();
      showRoom(room);
      renderOnline();
      sendViewing();
      composer.input.focus();
    } catch (err) {
      toast(err.message);
      btn.disabled = false;
    }
  });
}

function endPreview() {
  state.preview = null;
  $('join-bar')?.remove();
  els.composerForm.hidden = false;
  $('leave-btn').hidden = false;
  $('add-member-btn').hidden = false;
}

async function leaveCurrentRoom() {
  const room = currentRoom();
  if (!room) return;
  if (!window.confirm(`Leave #${room.name}?`)) return;
  els.leaveBtn.disabled = true;
  try {
    await api(`/api/v1/rooms/${encodeURIComponent(room.slug)}/leave`, { method: 'POST' });
    removeRoom(room.slug);
  } catch (err) {
    toast(err.message);
  } finally {
    els.leaveBtn.disabled = false;
  }
}

// ---------------------------------------------------------------- wiring

function roomFromPath() {
  const match = location.pathname.match(/^\/rooms\/([^/]+)\/?$/);
  return match ? decodeURIComponent(match[1]) : null;
}

function init() {
  // Rooms as rendered by the server, so the sidebar works before hello.
  for (const link of document.querySelectorAll('#room-list a[data-slug], #dm-list a[data-slug]')) {
    const d = link.dataset;
    addRoom({
      slug: d.slug, name: d.name, kind: d.kind, unread: Number(d.unread) || 0, last_seq: Number(d.lastSeq) || 0,
      mentions: Number(d.mentions) || 0, notify: d.notify || 'all', members: d.members ? d.members.split(',') : null,
    });
  }
  for (const li of els.onlineList.querySelectorAll('.online-name')) state.online.add(li.dataset.person ?? li.textContent);
  for (const el of document.querySelectorAll('[data-avatar]')) el.classList.add(hueClass(el.dataset.avatar));
  state.outbox.restore();
  history.replaceState({ room: state.current }, '', location.href);

  setupChrome();
  setupNotifyButton();
  setupRoomDialogs({
    currentRoom,
    hasRoom: (slug) => state.rooms.has(slug),
    upsertRoom,
    openRoom,
    openWhenJoined: (slug) => { state.openAfterJoin = slug; },
  });
  setupNewDm({ me: me.username, upsertRoom, openRoom });
  $('notify-select').addEventListener('change', (ev) => changeNotify(ev.target.value));
  setupPreview();
  renderRooms();
  renderOnline();
  const room = currentRoom();
  // A permalink (/messages/<id>) opens its room at that message.
  if (room && body.dataset.focusMessage) room.focusMessage = Number(body.dataset.focusMessage);
  if (room) showRoom(room); // history loads alongside the websocket handshake
  setupSearch({
    input: $('search-input'),
    panel: $('search-results'),
    roomName: (slug) => {
      const r = state.rooms.get(slug) ?? (state.preview?.slug === slug ? state.preview : null);
      if (!r) return `#${slug}`;
      return r.kind === 'dm' ? r.name : `#${r.name}`;
    },
    onOpen: openMessage,
  });

  $('sidebar').addEventListener('click', (ev) => {
    const link = ev.target.closest('#room-list a[data-slug], #dm-list a[data-slug]');
    if (!link || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    ev.preventDefault();
    openRoom(link.dataset.slug, { push: true });
  });
  window.addEventListener('popstate', (ev) => {
    const slug = ev.state?.room ?? roomFromPath();
    if (slug && slug !== state.current) openRoom(slug);
  });

  els.scroller.addEventListener('scroll', () => {
    state.pinned = isAtBottom();
    if (state.pinned) scheduleRead();
  }, { passive: true });
  // Keep the newest message in view when the viewport changes (mobile keyboard, resize).
  new ResizeObserver(() => { if (state.pinned) els.scroller.scrollTop = els.scroller.scrollHeight; }).observe(els.scroller);
  els.pill.addEventListener('click', () => {
    const room = currentRoom();
    if (room) room.holdRead = false;
    scrollToBottom();
    scheduleRead();
  });
  els.leaveBtn.addEventListener('click', leaveCurrentRoom);
  // Signing out closes this tab's socket server-side: do not try to reconnect.
  document.querySelector('.logout-form')?.addEventListener('submit', () => socket.stop());
  $('conn-retry').addEventListener('click', () => socket.reconnectNow());

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') {
      scheduleRead();
      if (Date.now() - socket.lastFrameAt > 30_000) socket.send({ type: 'ping' });
      sendViewing();
      renderOnline(); // viewers that expired while hidden
    }
  });
  window.addEventListener('online', () => socket.reconnectNow());
  document.addEventListener('keydown', (ev) => {
    // Alt+Up / Alt+Down: previous / next room.
    if (!ev.altKey || (ev.key !== 'ArrowUp' && ev.key !== 'ArrowDown')) return;
    const slugs = [...state.rooms.keys()];
    const i = slugs.indexOf(state.current);
    const next = slugs[(i + (ev.key === 'ArrowUp' ? -1 : 1) + slugs.length) % slugs.length];
    if (next) {
      ev.preventDefault();
      openRoom(next, { push: true });
    }
  });

  setInterval(() => currentRoom()?.timeline?.refreshTimes(), 30_000);
  setInterval(renderTyping, 1000);
  setInterval(renderOnline, 10_000); // viewers expire

  socket.start();
}

init();
