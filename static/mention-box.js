// The composer's @ type-ahead: typing "@al" lists the room's members that match;
// ↑/↓ move, Enter or Tab picks, Esc closes. The list is built from text nodes.

import { h, hueClass, initial } from './format.js';
import { applyMention, mentionMatches, mentionQuery } from './attention.js';

export class MentionBox {
  /**
   * @param {HTMLFormElement} form  the composer form (the list is placed above its box)
   * @param {HTMLTextAreaElement} input
   * @param {{people: () => Array<{username: string, display_name?: string}>, me: string,
   *          onChange: () => void}} opts
   */
  constructor(form, input, opts) {
    this.input = input;
    this.opts = opts;
    this.items = [];
    this.index = 0;
    this.query = null;
    this.list = h('ul', { class: 'suggest mention-suggest', id: 'mention-suggest', role: 'listbox', 'aria-label': 'People to mention', hidden: true });
    form.append(this.list);
    input.setAttribute('aria-controls', 'mention-suggest');
    input.setAttribute('aria-autocomplete', 'list');
    input.addEventListener('input', () => this.update());
    input.addEventListener('click', () => this.update());
    input.addEventListener('blur', () => setTimeout(() => this.close(), 150));
    // Capture on the form: runs before the composer's own Enter/Esc handling.
    form.addEventListener('keydown', (ev) => this.key(ev), true);
  }

  get isOpen() {
    return !this.list.hidden;
  }

  update() {
    const caret = this.input.selectionStart;
    const q = caret === this.input.selectionEnd ? mentionQuery(this.input.value, caret) : null;
    if (!q) {
      this.close();
      return;
    }
    this.query = q;
    this.items = mentionMatches(q.query, this.opts.people(), { me: this.opts.me });
    if (!this.items.length) {
      this.close();
      return;
    }
    this.index = Math.min(this.index, this.items.length - 1);
    this.render();
  }

  render() {
    this.list.replaceChildren(...this.items.map((p, i) => {
      const li = h('li', {
        class: 'suggest-item', role: 'option', id: `mention-opt-${i}`, 'aria-selected': i === this.index ? 'true' : 'false',
      },
      h('span', { class: `avatar avatar-xs ${hueClass(p.username)}`, 'aria-hidden': 'true' }, p.everyone ? '@' : initial(p.username)),
      h('span', {}, `@${p.username}`),
      p.display_name && p.display_name !== p.username ? h('small', {}, p.display_name) : null);
      // pointerdown, not click: the textarea keeps focus.
      li.addEventListener('pointerdown', (ev) => {
        ev.preventDefault();
        this.pick(i);
      });
      return li;
    }));
    this.list.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
    this.input.setAttribute('aria-activedescendant', `mention-opt-${this.index}`);
  }

  key(ev) {
    if (!this.isOpen || ev.target !== this.input || ev.isComposing) return;
    const n = this.items.length;
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      this.index = (this.index + (ev.key === 'ArrowDown' ? 1 : -1) + n) % n;
      this.render();
    } else if ((ev.key === 'Enter' && !ev.shiftKey) || ev.key === 'Tab') {
      this.pick(this.index);
    } else if (ev.key === 'Escape') {
      this.close();
    } else {
      return;
    }
    ev.preventDefault();
    ev.stopPropagation();
  }

  pick(i) {
    const person = this.items[i];
    if (!person || !this.query) return;
    const { text, caret } = applyMention(this.input.value, this.query.start, this.input.selectionStart, person.username);
    this.input.value = text;
    this.input.setSelectionRange(caret, caret);
    this.close();
    this.opts.onChange?.();
  }

  close() {
    if (this.list.hidden) return;
    this.list.hidden = true;
    this.list.replaceChildren();
    this.index = 0;
    this.query = null;
    this.input.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
  }
}
