// node --test tests/js: message formatting is parsed into plain tokens, never HTML.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBody, parseInline, safeHref, mentions } from '../../static/markup.js';

const types = (tokens) => tokens.map((t) => `${t.type}:${t.text}`);

test('plain text and HTML stay text', () => {
  assert.deepEqual(types(parseInline('<b>hi</b> & <script>x</script>')), ['text:<b>hi</b> & <script>x</script>']);
});

test('inline code is literal, emphasis and links inside it are not parsed', () => {
  assert.deepEqual(types(parseInline('run `rm *a* https://x.test` now')), ['text:run ', 'code:rm *a* https://x.test', 'text: now']);
});

test('bold and italic need a non-space inside their markers', () => {
  assert.deepEqual(types(parseInline('a *bold* and _it_ here')), ['text:a ', 'bold:bold', 'text: and ', 'italic:it', 'text: here']);
  assert.deepEqual(types(parseInline('2 * 3 * 4 and snake_case_name')), ['text:2 * 3 * 4 and snake_case_name']);
});

test('links: http(s) only, trailing punctuation left out, balanced parens kept', () => {
  assert.deepEqual(types(parseInline('see https://example.com/a.')), ['text:see ', 'link:https://example.com/a', 'text:.']);
  const wiki = parseInline('(https://en.wikipedia.org/wiki/Foo_(bar))');
  assert.equal(wiki.find((t) => t.type === 'link').text, 'https://en.wikipedia.org/wiki/Foo_(bar)');
  assert.equal(safeHref('javascript:alert(1)'), null);
  assert.equal(safeHref('data:text/html,x'), null);
  assert.equal(safeHref('https://a.test/x y'), 'https://a.test/x%20y');
  assert.deepEqual(types(parseInline('javascript:alert(1)')), ['text:javascript:alert(1)']);
});

test('mentions: names, a sentence stop after them, not e-mail addresses', () => {
  assert.deepEqual(types(parseInline('thanks @alice.')), ['text:thanks ', 'mention:@alice', 'text:.']);
  assert.deepEqual(types(parseInline('mail bob@example.com')), ['text:mail bob@example.com']);
  assert.ok(mentions(parseBody('hey @Bob look'), 'bob'));
  assert.ok(mentions(parseBody('@room deploy at 5'), 'carol'));
  assert.ok(!mentions(parseBody('`@bob` in code'), 'bob'));
});

test('code blocks keep their text verbatim, language line dropped', () => {
  const blocks = parseBody('before\n```js\nconst a = `x`; *no*\n```\nafter');
  assert.deepEqual(blocks.map((b) => b.type), ['text', 'code', 'text']);
  assert.equal(blocks[1].text, 'const a = `x`; *no*');
});

test('an unclosed fence is plain text', () => {
  const blocks = parseBody('```oops');
  assert.deepEqual(blocks.map((b) => b.type), ['text']);
});
