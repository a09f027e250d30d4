// Files in messages (SPEC §10): the composer's tray of uploads (attach button,
// paste, drag and drop; a progress bar and cancel per file, XMLHttpRequest for its
// upload progress), and how a message shows its attachments (image thumbnails that
// open full size, file cards with name and size).

import { csrfToken, goToLogin } from './api.js';
import { h, icon } from './format.js';

export const MAX_ATTACHMENTS = 10;
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
const THUMB_EDGE = 400; // the server's thumbnails are at most this on the longer side

/** "512 B", "1.5 KB", "23 MB": sizes as people read them (1 KB = 1024 B). */
export function formatSize(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return '';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1).replace(/\.0$/, '') : Math.round(value)} ${units[unit]}`;
}

/** The size a thumbnail is shown at: the image scaled into THUMB_EDGE (and `max`). */
export function thumbSize(width, height, max = 320) {
  if (!width || !height) return { width: max, height: max };
  const scale = Math.min(1, Math.min(THUMB_EDGE, max) / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** POST one file; `onProgress(sent, total)`. Returns {promise, cancel}. */
export function uploadFile(file, { onProgress } = {}) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open('POST', '/api/v1/uploads');
    xhr.setRequestHeader('X-CSRF-Token', csrfToken());
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.responseType = 'json';
    xhr.upload.addEventListener('progress', (ev) => {
      if (ev.lengthComputable) onProgress?.(ev.loaded, ev.total);
    });
    xhr.addEventListener('load', () => {
      if (xhr.status === 201 && xhr.response) {
        resolve(xhr.response);
        return;
      }
      if (xhr.status === 401) goToLogin();
      const message = xhr.response?.error?.message
        ?? (xhr.status === 413 ? 'The file is too large.' : `Upload failed (${xhr.status}).`);
      reject(new Error(message));
    });
    xhr.addEventListener('error', () => reject(new Error('Network error — the upload stopped.')));
    xhr.addEventListener('abort', () => reject(Object.assign(new Error('Cancelled'), { cancelled: true })));
    const form = new FormData();
    form.append('file', file, file.name || 'pasted-image.png');
    xhr.send(form);
  });
  return { promise, cancel: () => xhr.abort() };
}

/** The files waiting to go with the next message, shown above the message box. */
export class Tray {
  /** @param {{onChange: () => void, onError: (text: string) => void}} handlers */
  constructor(handlers) {
    this.handlers = handlers;
    this.items = []; // {file, upload: object|null, error, cancel, el, bar}
    this.el = h('ul', { class: 'attach-tray', 'aria-label': 'Attachments', hidden: true });
  }

  /** Upload these files (a FileList or an array). */
  add(files) {
    for (const file of files) {
      if (this.items.length >= MAX_ATTACHMENTS) {
        this.handlers.onError(`At most ${MAX_ATTACHMENTS} files go with one message.`);
        break;
      }
      this.start(file);
    }
  }

  start(file) {
    const item = { file, upload: null, error: null, cancel: null };
    const bar = h('progress', { class: 'attach-progress', max: 100, value: 0, 'aria-label': `Uploading ${file.name}` });
    const remove = h('button', {
      type: 'button', class: 'icon-btn attach-remove', 'aria-label': `Cancel ${file.name || 'file'}`, title: 'Cancel',
    }, icon('x'));
    remove.addEventListener('click', () => this.remove(item));
    item.bar = bar;
    item.status = h('span', { class: 'attach-status' }, 'Uploading…');
    item.el = h('li', { class: 'attach-item is-uploading' },
      this.preview(file),
      h('span', { class: 'attach-text' },
        h('span', { class: 'attach-name' }, file.name || 'pasted image'),
        h('span', { class: 'attach-meta' }, formatSize(file.size), ' · ', item.status)),
      bar, remove);
    this.items.push(item);
    this.el.append(item.el);
    this.el.hidden = false;
    const { promise, cancel } = uploadFile(file, {
      onProgress: (sent, total) => {
        const percent = Math.min(99, Math.floor((100 * sent) / total)); // 100: once stored
        bar.value = percent;
        item.status.textContent = `Uploading… ${percent}%`;
      },
    });
    item.cancel = cancel;
    promise.then((upload) => {
      item.upload = upload;
      item.cancel = null;
      item.el.classList.replace('is-uploading', 'is-done');
      item.status.textContent = 'Ready';
      bar.remove();
      if (upload.thumbnail_url) {
        item.el.querySelector('.attach-icon')?.replaceWith(
          h('img', { class: 'attach-thumb', src: upload.thumbnail_url, alt: '' }));
      }
      remove.setAttribute('aria-label', `Remove ${upload.name}`);
      remove.title = 'Remove';
    }, (error) => {
      if (error.cancelled) return;
      item.error = error.message;
      item.cancel = null;
      item.el.classList.replace('is-uploading', 'is-failed');
      item.status.textContent = error.message;
      bar.remove();
    }).finally(() => this.handlers.onChange());
    this.handlers.onChange();
  }

  preview(file) {
    // The server's thumbnail replaces the badge once uploaded (the CSP allows no blob:
    // images, and the thumbnail shows what the others will see).
    return h('span', { class: 'attach-icon', 'aria-hidden': 'true' }, fileBadge(file.name));
  }

  remove(item) {
    item.cancel?.();
    this.items = this.items.filter((i) => i !== item);
    item.el.remove();
    this.el.hidden = this.items.length === 0;
    this.handlers.onChange();
  }

  get busy() { return this.items.some((i) => !i.upload && !i.error); }
  get ready() { return this.items.filter((i) => i.upload).map((i) => i.upload); }
  get failed() { return this.items.some((i) => i.error); }

  clear() {
    for (const item of this.items) item.cancel?.();
    this.items = [];
    this.el.replaceChildren();
    this.el.hidden = true;
    this.handlers.onChange();
  }
}

function fileBadge(name) {
  const ext = /\.([A-Za-z0-9]{1,5})$/.exec(name ?? '')?.[1];
  return ext ? ext.toUpperCase() : 'FILE';
}

/** A message's attachments: images as thumbnails opening the full image, others as cards. */
export function attachmentsNode(attachments) {
  if (!attachments?.length) return null;
  const list = h('div', { class: 'msg-attachments' });
  for (const a of attachments) {
    if (a.thumbnail_url && IMAGE_TYPES.has(a.content_type)) {
      const size = thumbSize(a.width, a.height);
      list.append(h('a', {
        class: 'msg-image', href: a.url, target: '_blank', rel: 'noopener', title: `${a.name} (${formatSize(a.size)})`,
      }, h('img', {
        src: a.thumbnail_url, alt: a.name, width: size.width, height: size.height, loading: 'lazy', decoding: 'async',
      })));
    } else {
      list.append(h('a', { class: 'file-card', href: a.url, download: a.name, title: `Download ${a.name}` },
        h('span', { class: 'attach-icon', 'aria-hidden': 'true' }, fileBadge(a.name)),
        h('span', { class: 'attach-text' },
          h('span', { class: 'attach-name' }, a.name),
          h('span', { class: 'attach-meta' }, formatSize(a.size)))));
    }
  }
  return list;
}
