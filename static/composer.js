// The message box: Enter sends, Shift+Enter breaks the line, the box grows
// with its text, and a counter appears near the length limit. It can be in a mode:
// replying to a message (a quote above the box) or editing one (↑ in an empty box
// edits your last message); Esc leaves the mode.

import { codePoints, h } from './format.js';

export const MAX_BODY = 4000;
const COUNTER_FROM = 3500;
const MAX_HEIGHT_PX = 240;

export class Composer {
  /**
   * @param {{onSubmit: (text: string, mode: object|null) => void, onTyping: () => void,
   *          onEditLast: () => void}} handlers
   */
  constructor(form, handlers) {
    this.form = form;
    this.mode = null; // {kind: 'reply'|'edit', message, draft}
    this.modeBar = h('div', { class: 'composer-mode', hidden: true, role: 'status' });
    form.prepend(this.modeBar);
    this.input = form.querySelector('textarea');
    this.counter = form.querySelector('.char-count');
    this.sendBtn = form.querySelector('[type="submit"]');
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submit(handlers.onSubmit);
    });
    this.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && this.mode) {
        ev.preventDefault();
        this.clearMode();
        return;
      }
      if (ev.key === 'ArrowUp' && !this.input.value && !this.mode && !ev.shiftKey && !ev.altKey) {
        ev.preventDefault();
        handlers.onEditLast();
        return;
      }
      // keyCode 229: an IME is composing; Enter confirms the composition there.
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
        ev.preventDefault();
        this.submit(handlers.onSubmit);
      }
    });
    this.input.addEventListener('input', () => {
      this.refresh();
      if (this.input.value.trim()) handlers.onTyping();
    });
    this.refresh();
  }

  get value() {
    return this.input.value;
  }

  set value(text) {
    this.input.value = text;
    this.refresh();
  }

  submit(onSubmit) {
    const text = this.input.value.trim();
    if (!text) return;
    if (codePoints(text) > MAX_BODY) {
      this.input.focus();
      return;
    }
    const { mode } = this;
    onSubmit(text, mode);
    if (mode?.kind === 'edit') {
      this.clearMode();
    } else {
      this.clearMode(false);
      this.value = '';
    }
  }

  /** Reply to `message`: its quote above the box until sent or cancelled. */
  replyTo(message, quote) {
    this.setMode({ kind: 'reply', message, draft: null },
      `Replying to ${quote.author ?? 'a message'}: `, quote.text);
  }

  /** Edit `message` in the box; the draft comes back when done or cancelled. */
  edit(message) {
    const draft = this.mode ? this.mode.draft : this.input.value;
    this.setMode({ kind: 'edit', message, draft }, 'Editing your message', '');
    this.value = message.body;
    this.input.setSelectionRange(this.input.value.length, this.input.value.length);
  }

  setMode(mode, label, detail) {
    this.mode = mode;
    const cancel = h('button', { type: 'button', class: 'icon-btn composer-mode-cancel', 'aria-label': 'Cancel (Esc)', title: 'Cancel (Esc)' }, '×');
    cancel.addEventListener('click', () => this.clearMode());
    this.modeBar.replaceChildren(
      h('span', { class: 'composer-mode-label' }, label, detail ? h('span', { class: 'composer-mode-quote' }, detail) : null),
      cancel,
    );
    this.modeBar.hidden = false;
    this.form.classList.toggle('is-editing', mode.kind === 'edit');
    this.input.focus();
  }

  clearMode(restoreDraft = true) {
    const { mode } = this;
    if (!mode) return;
    this.mode = null;
    this.modeBar.hidden = true;
    this.modeBar.replaceChildren();
    this.form.classList.remove('is-editing');
    if (mode.kind === 'edit' && restoreDraft) this.value = mode.draft ?? '';
    this.input.focus();
  }

  refresh() {
    const n = codePoints(this.input.value.trim());
    const left = MAX_BODY - n;
    this.counter.classList.toggle('is-over', left < 0);
    const text = n >= COUNTER_FROM
      ? (left >= 0 ? `${left} characters left` : `${-left} characters over the limit`)
      : '';
    if (this.counter.textContent !== text) this.counter.textContent = text;
    this.sendBtn.disabled = n === 0 || left < 0;
    // CSSOM writes are allowed by the CSP (it forbids only inline style attributes).
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, MAX_HEIGHT_PX)}px`;
  }

  setRoomName(name, kind = 'public') {
    const label = kind === 'dm' ? `Message ${name}` : `Message #${name}`;
    this.input.placeholder = label;
    this.form.querySelector('label').textContent = label;
  }
}
