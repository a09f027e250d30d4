// node --test tests/js: sizes and thumbnail boxes of attachments, without a DOM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSize, thumbSize } from '../../static/attachments.js';
import { quoteOf } from '../../static/roomstream.js';

test('sizes read the way people say them', () => {
  assert.equal(formatSize(0), '0 B');
  assert.equal(formatSize(1023), '1023 B');
  assert.equal(formatSize(1024), '1 KB');
  assert.equal(formatSize(1536), '1.5 KB');
  assert.equal(formatSize(25 * 1024 * 1024), '25 MB');
  assert.equal(formatSize(3.25 * 1024 ** 3), '3.3 GB');
  assert.equal(formatSize(-1), '');
  assert.equal(formatSize(NaN), '');
});

test('thumbnails keep their aspect inside the box', () => {
  assert.deepEqual(thumbSize(4000, 2000), { width: 320, height: 160 });
  assert.deepEqual(thumbSize(100, 50), { width: 100, height: 50 });
  assert.deepEqual(thumbSize(30, 3000), { width: 3, height: 320 });
  assert.deepEqual(thumbSize(null, null), { width: 320, height: 320 });
});

test('a message of files alone is quoted by their names', () => {
  const q = quoteOf({ author: 'bob', body: '', attachments: [{ name: 'a.png' }, { name: 'b.pdf' }] });
  assert.equal(q.text, '📎 a.png, b.pdf');
});

test('a pending message keeps its uploads across a reload of the tab', async () => {
  const store = new Map();
  globalThis.sessionStorage = {
    getItem: (k) => store.get(k) ?? null,
    setItem: (k, v) => store.set(k, String(v)),
    removeItem: (k) => store.delete(k),
  };
  const { Outbox } = await import('../../static/outbox.js');
  const files = [{ id: 7, name: 'chart.png', url: '/uploads/7/chart.png' }];
  const before = new Outbox('t');
  before.add({ nonce: 'n1', room: 'general', body: '', state: 'pending', attachments: files });
  const after = new Outbox('t');
  after.restore();
  assert.deepEqual(after.get('n1').attachments, files);
  assert.equal(after.get('n1').state, 'pending');
});
