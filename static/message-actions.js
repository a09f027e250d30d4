// What a person can do to a message: react, reply, edit, delete, copy its link.
// One "⋯" button per message (one tab stop) opens a menu; the reactions row under a
// message toggles your reaction with a click. Everything is reachable by keyboard.

import { h } from './format.js';
import { displayName } from './names.js';

export const QUICK_EMOJI = ['👍', '❤️', '😂', '🎉', '👀', '✅'];
const MORE_EMOJI = [
  '🙏', '🔥', '🚀', '💯', '😄', '😅', '🤔', '😮', '😢', '😡', '👏', '🙌', '💪', '👌', '✨', '⭐',
  '🐛', '🍕', '☕', '🎯', '📌', '⚠️', '❌', '➕',
];

export class MessageActions {
  /**
   * @param {{me: string, isAdmin: boolean,
   *   onReact: (m, emoji: string, on: boolean) => void, onReply: (m) => void,
   *   onEdit: (m) => void, onDelete: (m) => void, onCopyLink: (m) => void,
   *   onShowEdits: (m) => void, onMarkUnread?: (m) => void}} opts
   */
  constructor(opts) {
    this.opts = opts;
    this.menu = null;
    this.returnFocus = null;
    document.addEventListener('pointerdown', (ev) => {
      if (this.menu && !this.menu.contains(ev.target)) this.close(false);
    });
  }

  /** The row's "⋯" button. */
  menuButton(m) {
    const btn = h('button', {
      type: 'button',
      class: 'msg-actions-btn icon-btn',
      'aria-label': `Actions for the message from ${displayName(m.author)}`,
      'aria-haspopup': 'menu',
      'aria-expanded': 'false',
      title: 'React, reply, edit…',
    }, '⋯');
    btn.addEventListener('click', () => this.open(btn, m));
    return btn;
  }

  /** Reactions under a message: one toggle per emoji, who reacted in its title. */
  reactionsRow(m) {
    const row = h('div', { class: 'reactions', role: 'group', 'aria-label': 'Reactions' });
    for (const r of m.reactions) {
      const mine = r.users.includes(this.opts.me);
      const names = r.users.map(displayName);
      const who = names.length > 8 ? `${names.slice(0, 8).join(', ')} and ${names.length - 8} more` : names.join(', ');
      const btn = h('button', {
        type: 'button',
        class: `reaction${mine ? ' is-mine' : ''}`,
        'aria-pressed': mine ? 'true' : 'false',
        title: `${who} reacted with ${r.emoji}`,
        'aria-label': `${r.emoji} ${r.count}: ${who}${mine ? ' (you)' : ''}`,
      }, h('span', { class: 'reaction-emoji' }, r.emoji), h('span', { class: 'reaction-count' }, String(r.count)));
      btn.addEventListener('click', () => this.opts.onReact(m, r.emoji, !mine));
      row.append(btn);
    }
    return row;
  }

  showEdits(m) {
    this.opts.onShowEdits(m);
  }

  open(anchor, m) {
    this.close(false);
    this.returnFocus = anchor;
    anchor.setAttribute('aria-expanded', 'true');
    const own = m.author === this.opts.me;
    const item = (label, action, cls = '') => {
      const b = h('button', { type: 'button', role: 'menuitem', class: `menu-item ${cls}`, tabindex: '-1' }, label);
      b.addEventListener('click', () => { this.close(); action(); });
      return b;
    };
    const mineFor = (emoji) => m.reactions?.some((r) => r.emoji === emoji && r.users.includes(this.opts.me));
    const quick = h('div', { class: 'menu-emoji', role: 'group', 'aria-label': 'React' },
      ...QUICK_EMOJI.map((e) => {
        const on = !mineFor(e);
        const b = h('button', {
          type: 'button', role: 'menuitem', class: `menu-emoji-btn${on ? '' : ' is-mine'}`, tabindex: '-1',
          'aria-label': `${on ? 'React with' : 'Remove your'} ${e}`,
        }, e);
        b.addEventListener('click', () => { this.close(); this.opts.onReact(m, e, on); });
        return b;
      }));
    const items = [
      quick,
      item('Add reaction…', () => this.openPicker(anchor, m)),
      item('Reply', () => this.opts.onReply(m)),
      own ? item('Edit', () => this.opts.onEdit(m)) : null,
      own || this.opts.isAdmin ? item('Delete…', () => this.opts.onDelete(m), 'is-danger') : null,
      item('Copy link', () => this.opts.onCopyLink(m)),
      this.opts.onMarkUnread && !own ? item('Mark unread', () => this.opts.onMarkUnread(m)) : null,
    ];
    this.show(anchor, h('div', { class: 'menu', role: 'menu', 'aria-label': 'Message actions' }, ...items));
  }

  openPicker(anchor, m) {
    this.returnFocus = anchor;
    const grid = h('div', { class: 'picker-grid', role: 'group', 'aria-label': 'Emoji' },
      ...[...QUICK_EMOJI, ...MORE_EMOJI].map((e) => {
        const b = h('button', { type: 'button', role: 'menuitem', class: 'menu-emoji-btn', tabindex: '-1', 'aria-label': `React with ${e}` }, e);
        b.addEventListener('click', () => { this.close(); this.opts.onReact(m, e, true); });
        return b;
      }));
    const input = h('input', {
      type: 'text', class: 'picker-input', placeholder: ':short_name:', 'aria-label': 'Emoji or :short_name:',
      maxlength: '32', spellcheck: 'false', autocomplete: 'off',
    });
    const form = h('form', { class: 'picker-form' }, input,
      h('button', { type: 'submit', class: 'btn btn-sm' }, 'React'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      let value = input.value.trim();
      if (!value) return;
      if (/^[\w+-]+$/.test(value)) value = `:${value}:`; // "tada" means :tada:
      this.close();
      this.opts.onReact(m, value, true);
    });
    this.show(anchor, h('div', { class: 'menu picker', role: 'menu', 'aria-label': 'Add a reaction' }, grid, form));
  }

  show(anchor, menu) {
    this.close(false);
    this.menu = menu;
    document.body.append(menu);
    const r = anchor.getBoundingClientRect();
    const width = menu.offsetWidth;
    const height = menu.offsetHeight;
    const left = Math.max(8, Math.min(r.right - width, window.innerWidth - width - 8));
    const below = r.bottom + 4 + height < window.innerHeight;
    menu.style.left = `${left}px`;
    menu.style.top = `${below ? r.bottom + 4 : Math.max(8, r.top - height - 4)}px`;
    const items = () => [...menu.querySelectorAll('[role="menuitem"], input')];
    items()[0]?.focus();
    menu.addEventListener('keydown', (ev) => {
      const list = items();
      const i = list.indexOf(document.activeElement);
      if (ev.key === 'Escape') {
        ev.preventDefault();
        this.close();
      } else if (ev.key === 'Tab') {
        this.close(false); // focus moves on naturally from the button
      } else if (ev.target.tagName !== 'INPUT' && ['ArrowDown', 'ArrowRight', 'ArrowUp', 'ArrowLeft', 'Home', 'End'].includes(ev.key)) {
        ev.preventDefault();
        const step = ev.key === 'ArrowDown' || ev.key === 'ArrowRight' ? 1 : -1;
        const next = ev.key === 'Home' ? 0 : ev.key === 'End' ? list.length - 1 : (i + step + list.length) % list.length;
        list[next]?.focus();
      }
    });
  }

  close(restoreFocus = true) {
    if (!this.menu) return;
    this.menu.remove();
    this.menu = null;
    const back = this.returnFocus;
    back?.setAttribute('aria-expanded', 'false');
    if (restoreFocus && back?.isConnected) back.focus();
  }
}
