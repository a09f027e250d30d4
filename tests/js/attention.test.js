// node --test tests/js: mentions, unread, notifications, without a DOM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyMention, dmName, firstUnreadIndex, mentionMatches, mentionQuery, mentionsMe,
  shouldNotify, titleWithCount, totals,
} from '../../static/attention.js';

test('mentionQuery finds the @name before the caret', () => {
  assert.deepEqual(mentionQuery('hi @bo', 6), { start: 3, query: 'bo' });
  assert.deepEqual(mentionQuery('@', 1), { start: 0, query: '' });
  assert.deepEqual(mentionQuery('(@al', 4), { start: 1, query: 'al' });
  assert.equal(mentionQuery('mail me@bob', 11), null); // an address
  assert.equal(mentionQuery('hi bob', 6), null);
  assert.equal(mentionQuery('@bob done', 9), null); // caret past a space
  assert.deepEqual(mentionQuery('@bob done', 4), { start: 0, query: 'bob' });
});

test('mentionMatches: usernames, then display names, then room; never me', () => {
  const people = [
    { username: 'alice' }, { username: 'bob', display_name: 'Robert Smith' },
    { username: 'roberta' }, { username: 'me' },
  ];
  assert.deepEqual(mentionMatches('ro', people, { me: 'me' }).map((p) => p.username),
    ['roberta', 'bob', 'room']);
  assert.deepEqual(mentionMatches('', people, { me: 'me', limit: 3 }).map((p) => p.username),
    ['alice', 'bob', 'roberta']);
  assert.deepEqual(mentionMatches('ALI', people).map((p) => p.username), ['alice']);
  assert.deepEqual(mentionMatches('zz', people), []);
  assert.deepEqual(mentionMatches('r', people, { room: false }).map((p) => p.username), ['roberta', 'bob']);
});

test('applyMention replaces the query and the rest of the word', () => {
  assert.deepEqual(applyMention('hi @bo', 3, 6, 'bob'), { text: 'hi @bob ', caret: 8 });
  assert.deepEqual(applyMention('hi @bo there', 3, 6, 'bob'), { text: 'hi @bob there', caret: 8 });
  assert.deepEqual(applyMention('@alxx x', 0, 3, 'alice'), { text: '@alice x', caret: 7 });
});

test('mentionsMe and shouldNotify follow the room setting; DMs always notify', () => {
  const plain = { author: 'bob', mentions: [] };
  const atMe = { author: 'bob', mentions: ['Alice'] };
  const atRoom = { author: 'bob', mentions: ['room'] };
  assert.equal(mentionsMe(atMe, 'alice'), true);
  assert.equal(mentionsMe(atRoom, 'alice'), true);
  assert.equal(mentionsMe(plain, 'alice'), false);
  assert.equal(shouldNotify({ kind: 'public', notify: 'all' }, plain, 'alice'), true);
  assert.equal(shouldNotify({ kind: 'public', notify: 'mentions' }, plain, 'alice'), false);
  assert.equal(shouldNotify({ kind: 'public', notify: 'mentions' }, atRoom, 'alice'), true);
  assert.equal(shouldNotify({ kind: 'public', notify: 'none' }, atMe, 'alice'), false);
  assert.equal(shouldNotify({ kind: 'dm', notify: 'none' }, plain, 'alice'), true);
  assert.equal(shouldNotify({ kind: 'dm', notify: 'all' }, { author: 'alice' }, 'alice'), false);
});

test('firstUnreadIndex counts back over messages by others', () => {
  const ms = ['bob', 'alice', 'bob', 'alice', 'bob'].map((author, i) => ({ id: i + 1, author }));
  assert.equal(firstUnreadIndex(ms, 0, 'alice'), null);
  assert.equal(firstUnreadIndex(ms, 1, 'alice'), 4);
  assert.equal(firstUnreadIndex(ms, 2, 'alice'), 2);
  assert.equal(firstUnreadIndex(ms, 3, 'alice'), 0);
  assert.equal(firstUnreadIndex(ms, 50, 'alice'), 0); // further back than the page
  assert.equal(firstUnreadIndex([], 3, 'alice'), null);
});

test('totals, title and DM names', () => {
  assert.deepEqual(totals([{ unread: 2, mentions: 1 }, { unread: 1 }]), { unread: 3, mentions: 1 });
  assert.equal(titleWithCount(0, 'chatapp'), 'chatapp');
  assert.equal(titleWithCount(3, 'chatapp'), '(3) chatapp');
  assert.equal(titleWithCount(120, 'chatapp'), '(99+) chatapp');
  assert.equal(dmName(['alice', 'bob', 'carol'], 'alice', 'x'), 'bob, carol');
  assert.equal(dmName([], 'alice', 'x'), 'x');
});
