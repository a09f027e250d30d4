// The search box (SPEC §12): results as you type, matched words marked, keyboard
// navigation; choosing a result opens its room at the message. Ctrl/Cmd+K or "/"
// (outside a text field) focuses it. Result text is built from text nodes and <mark>
// elements only, never HTML.

import { api, ApiError } from './api.js';
import { clockTime, h } from './format.js';
import { markedSnippet } from './searchmarks.js';
import { person } from './names.js';

const DEBOUNCE_MS = 180;
const PAGE = 20;

/** Whether a query has a word besides its from:/in: operators (as chatapp.search reads it). */
function hasWord(q) {
  return /[\p{L}\p{N}]/u.test(q.replace(/(^|\s)(from|in):[^\s"]+/gi, ' '));
}

export function setupSearch({ input, panel, roomName, onOpen }) {
  let timer = null;
  let inflight = null; // AbortController of the request whose answer we still want
  let results = []; // messages shown, in order
  let active = -1;
  let query = '';
  let shown = null; // the query whose results are on screen
  let hasMore = false;

  const close = () => {
    panel.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
  };
  const open = () => {
    panel.hidden = false;
    input.setAttribute('aria-expanded', 'true');
  };

  function status(text) {
    shown = null;
    results = [];
    active = -1;
    panel.replaceChildren(h('p', { class: 'search-status' }, text));
    open();
  }

  async function run(q, before = null) {
    inflight?.abort(); // a stale answer is never drawn over a newer one
    const controller = new AbortController();
    inflight = controller;
    const params = new URLSearchParams({ q, limit: String(PAGE) });
    if (before !== null) params.set('before', String(before));
    let data;
    try {
      data = await api(`/api/v1/search?${params}`, { signal: controller.signal });
    } catch (err) {
      if (controller.signal.aborted) return;
      inflight = null;
      status(err instanceof ApiError ? err.message : 'Search failed. Try again.');
      return;
    }
    if (controller.signal.aborted || inflight !== controller) return;
    inflight = null;
    const found = data.results ?? [];
    shown = q;
    if (before === null) {
      results = [];
      panel.replaceChildren();
    } else {
      panel.querySelector('.search-more')?.remove();
    }
    for (const result of found) panel.append(option(result, results.length)), results.push(result.message);
    hasMore = Boolean(data.has_more);
    if (!results.length) {
      status('No messages match.');
      return;
    }
    if (hasMore) {
      panel.append(h('button', {
        type: 'button', class: 'search-more', tabindex: '-1',
        onmousedown: (ev) => ev.preventDefault(),
        onclick: () => run(query, results[results.length - 1].id),
      }, 'More results'));
    }
    open();
    if (active < 0 || active >= results.length) setActive(0);
  }

  function option(result, index) {
    const m = result.message;
    const snip = markedSnippet(m.body, result.highlights);
    const text = h('span', { class: 'search-body' },
      snip.before ? '…' : null,
      snip.pieces.map((p) => (p.mark ? h('mark', {}, p.text) : p.text)),
      snip.after ? '…' : null);
    const when = new Date(m.created_at);
    return h('div', {
      class: 'search-result', role: 'option', id: `search-result-${index}`, 'aria-selected': 'false',
      'data-id': m.id, 'data-room': m.room,
      onmousedown: (ev) => ev.preventDefault(), // keep focus in the box
      onclick: () => choose(index),
      onmousemove: () => { if (active !== index) setActive(index); },
    },
    h('span', { class: 'search-meta' },
      h('span', { class: 'search-room' }, roomName(m.room)),
      person(m.author, 'search-author'),
      h('time', { datetime: m.created_at, title: when.toLocaleString() },
        `${when.toLocaleDateString()} ${clockTime(when)}`)),
    text);
  }

  function setActive(index) {
    const rows = panel.querySelectorAll('.search-result');
    rows[active]?.setAttribute('aria-selected', 'false');
    rows[active]?.classList.remove('is-active');
    active = index;
    const row = rows[index];
    if (!row) return;
    row.setAttribute('aria-selected', 'true');
    row.classList.add('is-active');
    input.setAttribute('aria-activedescendant', row.id);
    row.scrollIntoView({ block: 'nearest' });
  }

  function choose(index) {
    const m = results[index];
    if (!m) return;
    close();
    input.blur();
    onOpen(m.room, m.id);
  }

  input.addEventListener('input', () => {
    clearTimeout(timer);
    query = input.value.trim();
    if (!query) {
      inflight?.abort();
      inflight = null;
      close();
      return;
    }
    if (!hasWord(query)) { // the server would refuse it (422): say why without asking
      inflight?.abort();
      inflight = null;
      status('Type a word to search for: from: and in: only narrow a search.');
      return;
    }
    timer = setTimeout(() => run(query), DEBOUNCE_MS);
  });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      if (panel.hidden && results.length) open();
      if (!results.length) return;
      ev.preventDefault();
      const step = ev.key === 'ArrowDown' ? 1 : -1;
      setActive((active + step + results.length) % results.length);
      if (step === 1 && active === results.length - 1 && hasMore) run(query, results[active].id);
    } else if (ev.key === 'Enter') {
      ev.preventDefault();
      clearTimeout(timer);
      if (panel.hidden || !results.length || shown !== input.value.trim()) {
        // Typed faster than the debounce: search now rather than open a stale result.
        query = input.value.trim();
        if (hasWord(query)) run(query);
      } else {
        choose(Math.max(active, 0));
      }
    } else if (ev.key === 'Escape') {
      if (!panel.hidden) close();
      else { input.value = ''; input.blur(); }
      ev.preventDefault();
    }
  });
  input.addEventListener('focus', () => { if (results.length && input.value.trim()) open(); });
  input.addEventListener('blur', () => setTimeout(close, 120));

  document.addEventListener('keydown', (ev) => {
    const typing = ev.target instanceof HTMLElement
      && (ev.target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(ev.target.tagName));
    if ((ev.key === 'k' || ev.key === 'K') && (ev.ctrlKey || ev.metaKey) && !ev.altKey) {
      ev.preventDefault();
      input.focus();
      input.select();
    } else if (ev.key === '/' && !typing && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      ev.preventDefault();
      input.focus();
    }
  });
}
