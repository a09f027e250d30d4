// Search results without the DOM: the server's highlights are [start, end) ranges
// in Unicode code points (Python string indices, docs/protocol.md), while JS strings
// index UTF-16 units; working on the array of code points (`[...body]`) keeps an
// emoji or any astral character from shifting the marks. Tested under `node --test`.

/**
 * The part of `body` to show for a result: at most `width` code points around the
 * first highlight, cut into pieces {text, mark}. `before`/`after` say text was left out.
 */
export function markedSnippet(body, highlights, width = 160) {
  const chars = [...String(body)];
  const ranges = (Array.isArray(highlights) ? highlights : [])
    .filter((r) => Array.isArray(r) && Number.isInteger(r[0]) && Number.isInteger(r[1]) && r[0] < r[1])
    .map(([s, e]) => [Math.max(0, s), Math.min(chars.length, e)])
    .filter(([s, e]) => s < e)
    .sort((a, b) => a[0] - b[0]);
  let start = 0;
  if (chars.length > width && ranges.length) {
    // Some context before the first match, and as much after as fits.
    start = Math.max(0, Math.min(ranges[0][0] - Math.floor(width / 4), chars.length - width));
  }
  const end = Math.min(chars.length, start + width);
  const pieces = [];
  let at = start;
  for (const [s, e] of ranges) {
    const from = Math.max(s, at);
    const to = Math.min(e, end);
    if (from >= to) continue;
    if (from > at) pieces.push({ text: chars.slice(at, from).join(''), mark: false });
    pieces.push({ text: chars.slice(from, to).join(''), mark: true });
    at = to;
  }
  if (at < end) pieces.push({ text: chars.slice(at, end).join(''), mark: false });
  return { pieces, before: start > 0, after: end < chars.length };
}

/** Convert code-point ranges to UTF-16 ranges of the same string (for Range APIs). */
export function utf16Ranges(body, highlights) {
  const chars = [...String(body)];
  const offsets = [0];
  for (const c of chars) offsets.push(offsets[offsets.length - 1] + c.length);
  return highlights.map(([s, e]) => [offsets[Math.min(s, chars.length)], offsets[Math.min(e, chars.length)]]);
}
