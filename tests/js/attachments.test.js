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
