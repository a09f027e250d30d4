// The message list of one room: day separators, author/minute grouping,
// pending (outbox) rows, and older pages prepended without moving the view.

import {
  h, icon, hueClass, initial, dayKey, dayLabel, minuteKey, timeElement, renderBody,
  relativeTime,
} from './format.js';
import { attachmentsNode } from './attachments.js';
import { quoteOf } from './roomstream.js';
import { displayName, person } from './names.js';

export class Timeline {
  /**
   * @param {{slug: string, name: string, me: string,
   *          onRetry: (nonce: string) => void, onDiscard: (nonce: string) => void,
   *          onRetryLoad: () => void, actions: object,
   *          lookup: (id: number) => object|undefined}} opts
   * `actions` (message-actions.js) builds each row's action menu and reactions row;
   * `lookup` finds a loaded message for reply quotes.
   */
  constructor(opts) {
    this.opts = opts;
    this.messages = []; // confirmed messages, ascending seq
    this.rows = new Map(); // message id -> {row, sep}
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
    this.list.setAttribute('aria-label', kind === 'dm' ? `Messages with ${name}` : `Messages in #${name}`);
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
      const dm = this.opts.kind === 'dm';
      this.top.append(h('div', { class: 'room-intro' },
        h('div', { class: 'room-intro-icon' }, icon(this.opts.kind === 'private' ? 'lock' : dm ? 'at' : 'hash')),
        h('h2', {}, dm ? this.opts.name : `Welcome to #${this.opts.name}`),
        h('p', {}, dm
          ? `This is the beginning of your direct messages with ${this.opts.name}. Only the people in it can see it.`
          : `This is the very beginning of #${this.opts.name}.`)));
    } else {
      this.top.append(h('div', { class: 'timeline-sentinel', 'aria-hidden': 'true' }));
    }
  }

  /** Replace everything with the latest page. */
  reset(messages, hasMore) {
    this.messages = [];
    this.rows.clear();
    this.list.replaceChildren();
    this.loaded = true;
    this.hasMore = hasMore;
    for (const m of messages) this.append(m);
    this.setStatus(hasMore ? 'more' : 'start');
  }

  /** Add a message after the newest one; returns false for a duplicate. */
  append(m) {
    if (this.rows.has(m.id)) return false;
    const prev = this.messages.at(-1) ?? null;
    const { row, sep } = this.renderRow(m, prev);
    if (sep) this.list.append(sep);
    this.list.append(row);
    this.messages.push(m);
    this.rows.set(m.id, { row, sep });
    this.regroupOutbox();
    return true;
  }

  /** Show a new version of a loaded message (edited, reacted to) in place. */
  update(m) {
    const i = this.messages.findIndex((x) => x.id === m.id);
    if (i < 0) return false;
    this.messages[i] = m;
    this.rerender(i);
    this.refreshQuotes(m.id);
    return true;
  }

  /** Take a deleted message off the screen; its neighbour may regroup. */
  remove(id) {
    const i = this.messages.findIndex((x) => x.id === id);
    if (i < 0) return false;
    const old = this.rows.get(id);
    old.sep?.remove();
    old.row.remove();
    this.rows.delete(id);
    this.messages.splice(i, 1);
    if (i < this.messages.length) this.rerender(i);
    this.refreshQuotes(id);
    this.regroupOutbox();
    return true;
  }

  /** Render the message at index `i` again (its grouping follows its new neighbour). */
  rerender(i) {
    const m = this.messages[i];
    const old = this.rows.get(m.id);
    const hadFocus = old.row.contains(document.activeElement);
    const fresh = this.renderRow(m, this.messages[i - 1] ?? null);
    old.sep?.remove();
    if (fresh.sep) old.row.before(fresh.sep);
    old.row.replaceWith(fresh.row);
    this.rows.set(m.id, fresh);
    if (hadFocus) fresh.row.querySelector('.msg-actions-btn')?.focus();
  }

  /** Quotes of `id` in replies change when it is edited or deleted. */
  refreshQuotes(id) {
    this.messages.forEach((m, i) => { if (m.reply_to === id) this.rerender(i); });
  }

  /** "New messages" just above a loaded message (where the reader left off). */
  setDivider(id) {
    this.clearDivider();
    const row = this.rows.get(id)?.row;
    if (!row) return null;
    this.divider = h('li', { class: 'new-divider', role: 'separator', 'aria-label': 'New messages' }, 'New messages');
    row.before(this.divider);
    return this.divider;
  }

  clearDivider() {
    this.divider?.remove();
    this.divider = null;
  }

  /** The row of a loaded message, for jumping to it. */
  rowOf(id) {
    return this.rows.get(id)?.row ?? null;
  }

  /** Add an older page (ascending) in front; the caller keeps the scroll position. */
  prepend(messages, hasMore) {
    this.hasMore = hasMore;
    const older = messages.filter((m) => !this.rows.has(m.id) && (this.messages.length === 0 || m.seq < this.messages[0].seq));
    if (older.length) {
      const frag = document.createDocumentFragment();
      let prev = null;
      for (const m of older) {
        const { row, sep } = this.renderRow(m, prev);
        if (sep) frag.append(sep);
        frag.append(row);
        this.rows.set(m.id, { row, sep });
        prev = m;
      }
      // The old first message may now continue the new last one: render it again.
      const hadFirst = this.messages.length > 0;
      this.list.prepend(frag);
      this.messages = older.concat(this.messages);
      if (hadFirst) this.rerender(older.length);
      // Replies below may quote messages that just arrived.
      const ids = new Set(older.map((m) => m.id));
      this.messages.forEach((m, i) => { if (i >= older.length && ids.has(m.reply_to)) this.rerender(i); });
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
      author: m.author, body: m.body, date, cont: cont && !m.reply_to, edited: m.edited_at, bot: m.bot,
    });
    row.dataset.seq = m.seq;
    row.dataset.id = m.id;
    row.id = `msg-${m.id}`;
    const content = row.querySelector('.msg-content');
    if (m.reply_to) content.querySelector('.msg-body').before(this.quote(m.reply_to));
    const files = attachmentsNode(m.attachments);
    if (files) content.querySelector('.msg-body').after(files);
    const { actions } = this.opts;
    if (actions) {
      if (m.reactions?.length) content.append(actions.reactionsRow(m));
      row.append(actions.menuButton(m));
      row.querySelector('.msg-edited')?.addEventListener('click', () => actions.showEdits(m));
    }
    return { row, sep };
  }

  daySeparator(date) {
    return h('li', { class: 'day-sep', role: 'separator', 'data-day': dayKey(date) },
      h('span', { class: 'day-label' }, dayLabel(date)));
  }

  /** The quoted start of the message a reply answers; a click jumps to it. */
  quote(id) {
    const original = this.opts.lookup?.(id); // undefined: not loaded; null: deleted
    const q = original === undefined
      ? { deleted: false, author: null, text: 'an earlier message' }
      : quoteOf(original);
    const el = h('button', {
      type: 'button',
      class: `msg-quote${q.deleted ? ' is-deleted' : ''}`,
      'aria-label': q.deleted ? 'In reply to a deleted message' : `In reply to ${q.author ? displayName(q.author) : 'an earlier message'}: ${q.text}. Show it`,
      disabled: q.deleted,
    }, q.author ? person(q.author, 'msg-quote-author') : null, h('span', { class: 'msg-quote-text' }, q.text));
    el.addEventListener('click', () => this.opts.onJump?.(id));
    return el;
  }

  messageRow({ author, body, date, cont, edited, bot = false }) {
    const { node, mentioned } = renderBody(body, this.opts.me);
    const classes = ['msg'];
    if (cont) classes.push('is-cont');
    if (mentioned) classes.push('is-mention');
    if (author === this.opts.me) classes.push('is-own');
    const content = h('div', { class: 'msg-content' });
    if (!cont) {
      content.append(h('div', { class: 'msg-head' },
        person(author, 'msg-author'),
        bot ? h('span', { class: 'bot-badge' }, 'bot') : null,
        timeElement(date)));
    }
    const text = h('div', { class: 'msg-body' }, node);
    if (edited) {
      text.append(' ', h('button', {
        type: 'button', class: 'msg-edited link-btn', title: `Edited ${new Date(edited).toLocaleString()}: show earlier versions`,
      }, '(edited)'));
    }
    content.append(text);
    const gutter = cont
      ? h('div', { class: 'msg-gutter' }, timeElement(date, { relative: false, cls: 'msg-gutter-time' }))
      : h('div', { class: 'msg-gutter' }, h('span', { class: `avatar ${hueClass(author)}`, 'aria-hidden': 'true' }, initial(author)));
    if (cont) {
      // Screen readers still hear who wrote a grouped line.
      content.prepend(h('span', { class: 'sr-only' }, person(author), ': '));
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
    const files = attachmentsNode(item.attachments);
    if (files) content.append(files);
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

