// The small, safe formatting subset of message bodies (SPEC §5): code blocks,
// `inline code`, *bold*, _italic_, http(s) links and @mentions. Parsing yields plain
// tokens; format.js turns them into text nodes and elements, never into HTML.

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = new Set([...'.,;:!?\'")]}*_']);
const MENTION_RE = /(^|[^A-Za-z0-9_.-])@([A-Za-z0-9_.-]{3,32})/g;

/**
 * Split a body into blocks: ```fenced code``` stays verbatim; everything else is
 * inline text. Returns [{type: 'code', text} | {type: 'text', tokens}].
 */
export function parseBody(text) {
  const blocks = [];
  const fence = /```(?:[^\n`]*\n)?([\s\S]*?)```/g;
  let last = 0;
  for (const match of text.matchAll(fence)) {
    if (match.index > last) blocks.push({ type: 'text', tokens: parseInline(text.slice(last, match.index)) });
    blocks.push({ type: 'code', text: match[1].replace(/\n$/, '') });
    last = match.index + match[0].length;
  }
  if (last < text.length) blocks.push({ type: 'text', tokens: parseInline(text.slice(last)) });
  return blocks;
}

/**
 * Inline tokens: {type: 'text'|'code'|'bold'|'italic'|'link'|'mention', text, href?}.
 * `code` wins over everything (its content is literal); a link is never split by
 * emphasis; emphasis needs a non-space right inside its markers, as in Slack.
 */
export function parseInline(text) {
  const out = [];
  const parts = text.split(/(`[^`\n]+`)/);
  for (let i = 0; i < parts.length; i += 1) {
    if (!parts[i]) continue;
    if (i % 2 === 1) out.push({ type: 'code', text: parts[i].slice(1, -1) });
    else out.push(...parseLinks(parts[i]));
  }
  return out;
}

function parseLinks(text) {
  const out = [];
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    const url = trimUrl(match[0]);
    out.push(...parseEmphasis(text.slice(last, match.index)));
    const href = safeHref(url);
    out.push(href ? { type: 'link', text: url, href } : { type: 'text', text: url });
    last = match.index + url.length;
  }
  out.push(...parseEmphasis(text.slice(last)));
  return out;
}

/** Drop trailing punctuation, but keep a ")" that closes one inside the URL (wiki links). */
function trimUrl(url) {
  let end = url.length;
  while (end > 0 && TRAILING.has(url[end - 1])) {
    if (url[end - 1] === ')') {
      const head = url.slice(0, end);
      if (head.split('(').length >= head.split(')').length) break;
    }
    end -= 1;
  }
  return url.slice(0, end);
}

/** An absolute http(s) URL, normalised; anything else (javascript:, data:) is null. */
export function safeHref(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
  } catch {
    return null;
  }
}

function parseEmphasis(text) {
  if (!text) return [];
  const out = [];
  const re = /(^|[^\w*])\*(\S(?:[^*\n]*\S)?)\*(?![\w*])|(^|[^\w_])_(\S(?:[^_\n]*\S)?)_(?![\w_])/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    const lead = m[1] ?? m[3] ?? '';
    const start = m.index + lead.length;
    out.push(...parseMentions(text.slice(last, start)));
    out.push({ type: m[2] !== undefined ? 'bold' : 'italic', text: m[2] ?? m[4] });
    last = m.index + m[0].length;
  }
  out.push(...parseMentions(text.slice(last)));
  return out;
}

function parseMentions(text) {
  if (!text) return [];
  const out = [];
  let last = 0;
  for (const m of text.matchAll(MENTION_RE)) {
    let name = m[2];
    // "Thanks @alice." — a sentence's full stop is not part of the name.
    const stop = name.match(/[.-]+$/);
    if (stop && name.length - stop[0].length >= 3) name = name.slice(0, -stop[0].length);
    const start = m.index + m[1].length;
    if (start > last) out.push({ type: 'text', text: text.slice(last, start) });
    out.push({ type: 'mention', text: `@${name}`, user: name });
    last = start + 1 + name.length;
  }
  if (last < text.length) out.push({ type: 'text', text: text.slice(last) });
  return out;
}

/** Whether `blocks` mention `username` (or the whole room). */
export function mentions(blocks, username) {
  const me = username.toLowerCase();
  return blocks.some((b) => b.type === 'text' && b.tokens.some(
    (t) => t.type === 'mention' && (t.user.toLowerCase() === me || t.user.toLowerCase() === 'room'),
  ));
}
