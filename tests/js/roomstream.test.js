// node --test tests/js: the browser's room stream logic, without a DOM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoomStream, isRoomEvent, quoteOf } from '../../static/roomstream.js';

const msg = (id, seq, body = `m${id}`, extra = {}) => ({
  id, seq, room: 'general', author: 'alice', body, reactions: [], ...extra,
});
const message = (id, seq, body) => ({ type: 'message', room: 'general', seq, message: msg(id, seq, body) });

function recorder(stream) {
  const changes = [];
  stream.onChange = (c) => changes.push(c);
  return changes;
}

test('events apply in seq order, each once', () => {
  const s = new RoomStream();
  const changes = recorder(s);
  assert.equal(s.offer(message(1, 1)), false);
  assert.equal(s.offer(message(1, 1)), false); // duplicate
  assert.equal(s.offer(message(2, 2)), false);
  assert.equal(s.lastSeq, 2);
  assert.deepEqual(changes.map((c) => c.message.id), [1, 2]);
});

test('a gap holds later events and asks for sync; sync fills it', () => {
  const s = new RoomStream({ lastSeq: 4 });
  const changes = recorder(s);
  assert.equal(s.offer(message(7, 7)), true, 'seq 7 after 4 is a gap');
  assert.equal(s.lastSeq, 4);
  assert.equal(changes.length, 0);
  const verdict = s.synced({ room: 'general', recovered: true, last_seq: 7, events: [message(5, 5), message(6, 6), message(7, 7)] });
  assert.equal(verdict, 'ok');
  assert.equal(s.lastSeq, 7);
  assert.deepEqual(changes.map((c) => c.event.seq), [5, 6, 7]);
  assert.equal(s.hasGap, false);
});

test('an unrecoverable sync tells the caller to reload', () => {
  const s = new RoomStream({ lastSeq: 1 });
  s.offer(message(900, 900));
  assert.equal(s.synced({ recovered: false, events: [], last_seq: 900 }), 'reload');
  assert.equal(s.hasGap, false);
});

test('edits, deletes and reactions change the projection', () => {
  const s = new RoomStream();
  s.reset([msg(1, 1, 'helo'), msg(2, 2)], 2);
  const changes = recorder(s);
  s.offer({ type: 'message_edited', room: 'general', seq: 3, message: msg(1, 1, 'hello', { edited_at: '2026-11-29T10:00:00Z' }) });
  s.offer({ type: 'reaction', room: 'general', seq: 4, id: 2, emoji: '👍', user: 'bob', on: true, reactions: [{ emoji: '👍', count: 1, users: ['bob'] }] });
  s.offer({ type: 'message_deleted', room: 'general', seq: 5, id: 1 });
  assert.deepEqual(changes.map((c) => c.kind), ['edited', 'reacted', 'deleted']);
  assert.deepEqual(s.ordered().map((m) => m.id), [2]);
  assert.deepEqual(s.messages.get(2).reactions, [{ emoji: '👍', count: 1, users: ['bob'] }]);
  assert.equal(s.lastSeq, 5);
});

test('a client that was away converges to what the others see', () => {
  const live = new RoomStream();
  const away = new RoomStream();
  const events = [
    message(1, 1, 'a'), message(2, 2, 'b'),
    { type: 'message_edited', room: 'general', seq: 3, message: msg(1, 1, 'a2', { edited_at: 'x' }) },
    { type: 'reaction', room: 'general', seq: 4, id: 2, emoji: ':tada:', user: 'bob', on: true, reactions: [{ emoji: ':tada:', count: 1, users: ['bob'] }] },
    message(3, 5, 'c'),
    { type: 'message_deleted', room: 'general', seq: 6, id: 3 },
  ];
  for (const ev of events) live.offer(ev);
  away.offer(events[0]);
  // Reconnected: sync returns the rest, possibly overlapping what it saw.
  away.synced({ recovered: true, last_seq: 6, events: events.slice(0, 6) });
  assert.deepEqual(away.ordered(), live.ordered());
  assert.equal(away.lastSeq, live.lastSeq);
});

test('events that arrive while a page loads wait for reset', () => {
  const s = new RoomStream({ lastSeq: 0 });
  s.loading = true;
  const changes = recorder(s);
  assert.equal(s.offer(message(11, 11)), false);
  assert.equal(changes.length, 0);
  s.reset([msg(9, 9), msg(10, 10)], 10);
  assert.deepEqual(changes.map((c) => c.message.id), [11]);
  assert.equal(s.lastSeq, 11);
});

test('ack: applied when next, duplicate when seen, wait when earlier ones are missing', () => {
  const s = new RoomStream({ lastSeq: 3 });
  assert.equal(s.ack(msg(4, 4)), 'applied');
  assert.equal(s.ack(msg(4, 4)), 'duplicate');
  assert.equal(s.ack(msg(9, 9)), 'wait');
  assert.equal(s.lastSeq, 4);
});

test('non-room events and malformed ones are ignored', () => {
  assert.equal(isRoomEvent({ type: 'typing', room: 'general', seq: 1 }), false);
  assert.equal(isRoomEvent({ type: 'message', room: 'general', seq: '1' }), false);
  assert.equal(isRoomEvent({ type: 'message', room: 'general', seq: 0 }), false);
  assert.equal(isRoomEvent(null), false);
  const s = new RoomStream();
  assert.equal(s.offer({ type: 'read', room: 'general', seq: 5 }), false);
  assert.equal(s.lastSeq, 0);
});

test('a reply quote shows the author and the start of the body, or that it is gone', () => {
  assert.deepEqual(quoteOf(null), { deleted: true, author: null, text: 'deleted message' });
  const q = quoteOf(msg(1, 1, `${'word '.repeat(40)}`), 20);
  assert.equal(q.author, 'alice');
  assert.equal([...q.text].length, 20);
  assert.ok(q.text.endsWith('…'));
  assert.equal(quoteOf(msg(1, 1, 'a\n\nb')).text, 'a b');
});

test('lookup tells a deleted message from one not loaded; the window is bounded', () => {
  const s = new RoomStream({ limit: 3 });
  for (let i = 1; i <= 5; i += 1) s.offer(message(i, i));
  assert.deepEqual(s.ordered().map((m) => m.id), [3, 4, 5]);
  s.offer({ type: 'message_deleted', room: 'general', seq: 6, id: 4 });
  assert.equal(s.lookup(4), null);
  assert.equal(s.lookup(1), undefined);
  assert.equal(s.lookup(5).id, 5);
});
