import { test } from 'node:test';
import assert from 'node:assert/strict';
import { markedSnippet, utf16Ranges } from '../../static/searchmarks.js';

const text = (r) => r.pieces.map((p) => (p.mark ? `[${p.text}]` : p.text)).join('');

test('marks are code-point ranges, so emoji before a match do not shift it', () => {
  // "🚀🚀 café": café is code points 3-7 (UTF-16 units 5-9).
  assert.equal(text(markedSnippet('🚀🚀 café', [[3, 7]])), '🚀🚀 [café]');
  assert.deepEqual(utf16Ranges('🚀🚀 café', [[3, 7]]), [[5, 9]]);
  assert.equal(text(markedSnippet('a 𝒳 b 𝒳', [[2, 3], [6, 7]])), 'a [𝒳] b [𝒳]');
});

test('a long body is cut around the first match', () => {
  const body = `${'x'.repeat(300)} needle ${'y'.repeat(300)}`;
  const snip = markedSnippet(body, [[301, 307]], 100);
  assert.ok(snip.before && snip.after);
  assert.equal([...text(snip)].length, 102);
  assert.ok(text(snip).includes('[needle]'));
  const start = markedSnippet(body, [], 100);
  assert.ok(!start.before && start.after);
});

test('bad or out-of-range highlights are ignored, never thrown on', () => {
  assert.equal(text(markedSnippet('abc', [[5, 9], [2, 1], 'x', [0, 99]])), '[abc]');
  assert.equal(text(markedSnippet('abc', null)), 'abc');
});
