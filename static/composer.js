// The message box: Enter sends, Shift+Enter breaks the line, the box grows
// with its text, and a counter appears near the length limit.

import { codePoints } from './format.js';

export const MAX_BODY = 4000;
const COUNTER_FROM = 3500;
const MAX_HEIGHT_PX = 240;

export class Composer {
  /** @param {{onSubmit: (text: string) => void, onTyping: () => void}} handlers */
  constructor(form, handlers) {
    this.form = form;
    this.input = form.querySelector('textarea');
    this.counter = form.querySelector('.char-count');
    this.sendBtn = form.querySelector('[type="submit"]');
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submit(handlers.onSubmit);
    });
    this.input.addEventListener('keydown', (ev) => {
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
    onSubmit(text);
    this.value = '';
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

  setRoomName(name) {
    this.input.placeholder = `Message #${name}`;
    this.form.querySelector('label').textContent = `Message #${name}`;
  }
}
