// The message box: Enter sends, Shift+Enter breaks the line, the box grows
// with its text, and a counter appears near the length limit. It can be in a mode:
// replying to a message (a quote above the box) or editing one (↑ in an empty box
// edits your last message); Esc leaves the mode. Files come in through the attach
// button, a paste or a drop, upload at once, and go with the next message.

import { Tray } from './attachments.js';
import { codePoints, h, icon } from './format.js';

export const MAX_BODY = 4000;
const COUNTER_FROM = 3500;
const MAX_HEIGHT_PX = 240;

export class Composer {
  /**
   * @param {{onSubmit: (text: string, mode: object|null) => void, onTyping: () => void,
   *          onEditLast: () => void, onError?: (text: string) => void}} handlers
   * onSubmit gets a third argument: the uploads to attach (objects of SPEC §10).
   */
  constructor(form, handlers) {
    this.form = form;
    this.mode = null; // {kind: 'reply'|'edit', message, draft}
    this.modeBar = h('div', { class: 'composer-mode', hidden: true, role: 'status' });
    form.prepend(this.modeBar);
    this.input = form.querySelector('textarea');
    this.counter = form.querySelector('.char-count');
    this.sendBtn = form.querySelector('[type="submit"]');
    this.tray = new Tray({ onChange: () => this.refresh(), onError: (t) => handlers.onError?.(t) });
    this.modeBar.after(this.tray.el);
    this.installFiles();
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
    const editing = this.mode?.kind === 'edit';
    const files = editing ? [] : this.tray.ready;
    if (!text && !files.length) return;
    if (codePoints(text) > MAX_BODY || (!editing && this.tray.busy)) {
      this.input.focus();
      return;
    }
    const { mode } = this;
    onSubmit(text, mode, files);
    if (mode?.kind === 'edit') {
      this.clearMode();
    } else {
      this.clearMode(false);
      this.value = '';
      this.tray.clear();
    }
  }

  /** The attach button, paste and drag-and-drop: each file uploads at once. */
  installFiles() {
    // Hidden: the button opens it (a hidden file input still opens its dialog).
    const picker = h('input', { type: 'file', multiple: true, hidden: true, 'aria-label': 'Files to attach' });
    const button = h('button', {
      type: 'button', class: 'attach-btn icon-btn', title: 'Attach files', 'aria-label': 'Attach files',
    }, icon('paperclip'));
    button.addEventListener('click', () => picker.click());
    picker.addEventListener('change', () => {
      this.tray.add(picker.files);
      picker.value = '';
      this.input.focus();
    });
    this.input.before(button, picker);
    this.input.addEventListener('paste', (ev) => {
      const files = [...(ev.clipboardData?.files ?? [])];
      if (!files.length) return; // text pastes as text
      ev.preventDefault();
      this.tray.add(files);
    });
    // Files dropped anywhere on the page come here (not opened by the browser in place
    // of the chat), unless the message box is hidden (a room not joined).
    const box = this.input.closest('.composer-box') ?? this.form;
    let depth = 0;
    const hasFiles = (ev) => [...(ev.dataTransfer?.types ?? [])].includes('Files');
    document.addEventListener('dragenter', (ev) => {
      if (!hasFiles(ev)) return;
      depth += 1;
      box.classList.add('is-dropping');
    });
    document.addEventListener('dragleave', () => {
      depth = Math.max(0, depth - 1);
      if (!depth) box.classList.remove('is-dropping');
    });
    document.addEventListener('dragover', (ev) => {
      if (hasFiles(ev)) ev.preventDefault();
    });
    document.addEventListener('drop', (ev) => {
      depth = 0;
      box.classList.remove('is-dropping');
      if (!ev.dataTransfer?.files?.length) return;
      ev.preventDefault();
      if (this.form.hidden) return;
      this.tray.add(ev.dataTransfer.files);
      this.input.focus();
    });
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
    const files = this.tray.ready.length;
    this.sendBtn.disabled = (n === 0 && !files) || left < 0 || this.tray.busy;
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
