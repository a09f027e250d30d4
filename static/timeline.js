// The message list of one room: day separators, author/minute grouping,
// pending (outbox) rows, and older pages prepended without moving the view.

import {
  h, icon, hueClass, initial, dayKey, dayLabel, minuteKey, timeElement, renderBody,
  relativeTime,
} from './format.js';

export class Timeline {
  /**
   * @param {{slug: string, name: string, me: string,
   *          onRetry: (nonce: string) => void, onDiscard: (nonce: string) => void,
   *          onRetryLoad: () => void}} opts
   */
  constructor(opts) {
    this.opts = opts;
    this.messages = []; // confirmed messages, ascending seq
    this.seqs = new Set();
    this.rows = new Map(); // seq -> {row, sep}
    this.outboxRows = new Map(); // nonce -> {item, row}
    this.hasMore = true;
    this.loaded = false;
    this.loadingOlder = false;
    this.savedScroll = null; // null means pinned to bottom

    this.top = h('div', { class: 'timeline-top' });
    this.list = h('ol', { class: 'msg-list', 'aria-label': `Messages in #${opts.name}` });
    this.outbox = h('ol', { class: 'msg-list outbox', 'aria-label': 'Messages being sent' });
    this.el = h('div', { class: 'timeline' }, this.top, this.list, this.outbox);
    this.setStatus('loading');
  }

  get oldestId() {
    return this.messages[0]?.id ?? null;
  }

  get maxSeq() {
    return this.messages.at(-1)?.seq ?? 0;
  }

  rename(name, kind) {
    this.opts.name = name;
    this.opts.kind = kind;
    this.list.setAttribute('aria-label', `Messages in #${name}`);
    if (this.loaded && !this.hasMore) this.setStatus('start');
  }

  /** The top area: a loader, an error with retry, or the room's beginning. */
  setStatus(kind, message = '') {
    this.top.replaceChildren();
    if (kind === 'loading') {
      this.top.append(h('p', { class: 'timeline-status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'Loading messages…'));
    } else if (kind === 'error') {
      this.top.append(h('p', { class: 'timeline-status is-error' }, message || 'Could not load messages.', ' ',
        h('button', { type: 'button', class: 'link-btn', onclick: () => this.opts.onRetryLoad() }, 'Try again')));
    } else if (kind === 'start') {
      this.top.append(h('div', { class: 'room-intro' },
        h('div', { class: 'room-intro-icon' }, icon(this.opts.kind === 'private' ? 'lock' : 'hash')),
        h('h2', {}, `Welcome to #${this.opts.name}`),
        h('p', {}, `This is the very beginning of #${this.opts.name}.`)));
    } else {
      this.top.append(h('div', { class: 'timeline-sentinel', 'aria-hidden': 'true' }));
    }
  }

  /** Replace everything with the latest page. */
  reset(messages, hasMore) {
    this.messages = [];
    this.seqs.clear();
    this.rows.clear();
    this.list.replaceChildren();
    this.loaded = true;
    this.hasMore = hasMore;
    for (const m of messages) this.append(m);
    this.setStatus(hasMore ? 'more' : 'start');
  }

  /** Add a message after the newest one; returns false for a duplicate. */
  append(m) {
    if (this.seqs.has(m.seq)) return false;
    const prev = this.messages.at(-1) ?? null;
    const { row, sep } = this.renderRow(m, prev);
    if (sep) this.list.append(sep);
    this.list.append(row);
    this.messages.push(m);
    this.seqs.add(m.seq);
    this.rows.set(m.seq, { row, sep });
    this.regroupOutbox();
    return true;
  }

  /** Add an older page (ascending) in front; the caller keeps the scroll position. */
  prepend(messages, hasMore) {
    this.hasMore = hasMore;
    const older = messages.filter((m) => !this.seqs.has(m.seq) && (this.messages.length === 0 || m.seq < this.messages[0].seq));
    if (older.length) {
      const frag = document.createDocumentFragment();
      let prev = null;
      for (const m of older) {
        const { row, sep } = this.renderRow(m, prev);
        if (sep) frag.append(sep);
        frag.append(row);
        this.seqs.add(m.seq);
        this.rows.set(m.seq, { row, sep });
        prev = m;
      }
      // The old first message may now continue the new last one: render it again.
      const oldFirst = this.messages[0];
      if (oldFirst) {
        const old = this.rows.get(oldFirst.seq);
        const fresh = this.renderRow(oldFirst, prev);
        old.sep?.remove();
        if (fresh.sep) old.row.before(fresh.sep);
        old.row.replaceWith(fresh.row);
        this.rows.set(oldFirst.seq, fresh);
      }
      this.list.prepend(frag);
      this.messages = older.concat(this.messages);
    }
    this.setStatus(hasMore ? 'more' : 'start');
  }

  renderRow(m, prev) {
    const date = new Date(m.created_at);
    const prevDate = prev ? new Date(prev.created_at) : null;
    const newDay = !prevDate || dayKey(prevDate) !== dayKey(date);
    const sep = newDay ? this.daySeparator(date) : null;
    const cont = !newDay && prev.author === m.author && minuteKey(prevDate) === minuteKey(date);
    const row = this.messageRow({
      author: m.author, body: m.body, date, cont, edited: m.edited_at,
    });
    row.dataset.seq = m.seq;
    row.dataset.id = m.id;
    return { row, sep };
  }

  daySeparator(date) {
    return h('li', { class: 'day-sep', role: 'separator', 'data-day': dayKey(date) },
      h('span', { class: 'day-label' }, dayLabel(date)));
  }

  messageRow({ author, body, date, cont, edited }) {
    const { node, mentioned } = renderBody(body, this.opts.me);
    const classes = ['msg'];
    if (cont) classes.push('is-cont');
    if (mentioned) classes.push('is-mention');
    if (author === this.opts.me) classes.push('is-own');
    const content = h('div', { class: 'msg-content' });
    if (!cont) {
      content.append(h('div', { class: 'msg-head' },
        h('span', { class: 'msg-author' }, author),
        timeElement(date)));
    }
    const text = h('div', { class: 'msg-body' }, node);
    if (edited) text.append(' ', h('span', { class: 'msg-edited', title: `Edited ${new Date(edited).toLocaleString()}` }, '(edited)'));
    content.append(text);
    const gutter = cont
      ? h('div', { class: 'msg-gutter' }, timeElement(date, { relative: false, cls: 'msg-gutter-time' }))
      : h('div', { class: 'msg-gutter' }, h('span', { class: `avatar ${hueClass(author)}`, 'aria-hidden': 'true' }, initial(author)));
    if (cont) {
      // Screen readers still hear who wrote a grouped line.
      content.prepend(h('span', { class: 'sr-only' }, `${author}: `));
    }
    return h('li', { class: classes.join(' ') }, gutter, content);
  }

  // Outbox rows: my messages not yet confirmed in seq order.

  addOutbox(item) {
    if (this.outboxRows.has(item.nonce)) return;
    const row = this.outboxRow(item, this.lastVisibleBefore(null));
    this.outbox.append(row);
    this.outboxRows.set(item.nonce, { item, row });
  }

  updateOutbox(item) {
    const entry = this.outboxRows.get(item.nonce);
    if (!entry) return;
    const prevRow = entry.row;
    const fresh = this.outboxRow(item, this.lastVisibleBefore(item.nonce));
    prevRow.replaceWith(fresh);
    entry.row = fresh;
    entry.item = item;
  }

  removeOutbox(nonce) {
    const entry = this.outboxRows.get(nonce);
    if (!entry) return;
    entry.row.remove();
    this.outboxRows.delete(nonce);
    this.regroupOutbox();
  }

  /** The author/time of whatever is shown just above the outbox row `nonce`. */
  lastVisibleBefore(nonce) {
    let prev = null;
    for (const [key, entry] of this.outboxRows) {
      if (key === nonce) break;
      prev = { author: this.opts.me, date: new Date(entry.item.ts) };
    }
    if (prev) return prev;
    const last = this.messages.at(-1);
    return last ? { author: last.author, date: new Date(last.created_at) } : null;
  }

  regroupOutbox() {
    if (this.outboxRows.size === 0) return;
    for (const entry of this.outboxRows.values()) {
      const fresh = this.outboxRow(entry.item, this.lastVisibleBefore(entry.item.nonce));
      if (fresh.className !== entry.row.className) {
        entry.row.replaceWith(fresh);
        entry.row = fresh;
      }
    }
  }

  outboxRow(item, prev) {
    const date = new Date(item.ts);
    const cont = Boolean(prev) && prev.author === this.opts.me && minuteKey(prev.date) === minuteKey(date);
    const row = this.messageRow({ author: this.opts.me, body: item.body, date, cont });
    row.classList.add(`is-${item.state}`);
    row.dataset.nonce = item.nonce;
    const content = row.querySelector('.msg-content');
    if (item.state === 'pending') {
      content.append(h('p', { class: 'msg-state' }, 'Sending…'));
    } else if (item.state === 'failed') {
      content.append(h('p', { class: 'msg-state' },
        icon('alert'), ` Not sent${item.error ? ` — ${item.error}` : ''} `,
        h('button', { type: 'button', class: 'link-btn', onclick: () => this.opts.onRetry(item.nonce) }, 'Retry'),
        ' · ',
        h('button', { type: 'button', class: 'link-btn', onclick: () => this.opts.onDiscard(item.nonce) }, 'Discard')));
    }
    return row;
  }

  refreshTimes() {
    const now = Date.now();
    for (const el of this.el.querySelectorAll('time.rel')) {
      const text = relativeTime(new Date(el.dateTime), now);
      if (el.textContent !== text) el.textContent = text;
    }
    for (const el of this.el.querySelectorAll('.day-sep')) {
      const first = el.nextElementSibling?.querySelector('time');
      if (first) el.firstChild.textContent = dayLabel(new Date(first.dateTime));
    }
  }
}

