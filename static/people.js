// "New message": pick 1–8 people with a type-ahead over GET /api/v1/users, then open
// (or find) the direct message with them. ↑/↓ move, Enter picks, Backspace in the empty
// box takes the last person back.

import { api } from './api.js';
import { h, hueClass, initial } from './format.js';
import { mentionMatches } from './attention.js';

const $ = (id) => document.getElementById(id);
const MAX_PEOPLE = 8;

/**
 * @param {{me: string, upsertRoom: (room) => object, openRoom: (slug, opts) => void}} app
 */
export function setupNewDm(app) {
  const dialog = $('new-dm-dialog');
  const form = $('new-dm-form');
  const input = $('new-dm-input');
  const chips = $('new-dm-chips');
  const options = $('new-dm-options');
  const error = $('new-dm-error');
  const submit = $('new-dm-submit');
  let people = [];
  let chosen = [];
  let matches = [];
  let index = 0;

  const showError = (message) => {
    error.textContent = message;
    error.hidden = !message;
  };

  function renderChips() {
    chips.replaceChildren(...chosen.map((p) => {
      const remove = h('button', { type: 'button', 'aria-label': `Remove ${p.username}` }, '×');
      remove.addEventListener('click', () => {
        chosen = chosen.filter((c) => c !== p);
        renderChips();
        input.focus();
      });
      return h('li', { class: 'chip' }, p.display_name || p.username, remove);
    }));
    submit.disabled = chosen.length === 0;
    input.placeholder = chosen.length ? 'Add someone else' : 'Type a name';
  }

  function renderOptions() {
    const taken = new Set(chosen.map((p) => p.username));
    const q = input.value.trim().replace(/^@/, '');
    matches = q || document.activeElement === input
      ? mentionMatches(q, people.filter((p) => p.active !== false && !taken.has(p.username)), { me: app.me, room: false, limit: 8 })
      : [];
    index = Math.min(index, Math.max(0, matches.length - 1));
    options.replaceChildren(...matches.map((p, i) => {
      const li = h('li', { class: 'suggest-item', role: 'option', id: `new-dm-opt-${i}`, 'aria-selected': i === index ? 'true' : 'false' },
        h('span', { class: `avatar avatar-xs ${hueClass(p.username)}`, 'aria-hidden': 'true' }, initial(p.username)),
        h('span', {}, p.display_name || p.username),
        p.display_name && p.display_name !== p.username ? h('small', {}, p.username) : null,
        p.bot ? h('small', {}, 'bot') : null);
      li.addEventListener('pointerdown', (ev) => {
        ev.preventDefault();
        choose(i);
      });
      return li;
    }));
    const open = matches.length > 0 && chosen.length < MAX_PEOPLE;
    options.hidden = !open;
    input.setAttribute('aria-expanded', open ? 'true' : 'false');
    if (open) input.setAttribute('aria-activedescendant', `new-dm-opt-${index}`);
    else input.removeAttribute('aria-activedescendant');
  }

  function choose(i) {
    const p = matches[i];
    if (!p || chosen.length >= MAX_PEOPLE) return;
    chosen.push(p);
    input.value = '';
    index = 0;
    renderChips();
    renderOptions();
  }

  async function open() {
    form.reset();
    chosen = [];
    showError('');
    renderChips();
    options.hidden = true;
    dialog.showModal();
    input.focus();
    try {
      people = (await api('/api/v1/users')).users ?? [];
      renderOptions();
    } catch (err) {
      showError(err.message);
    }
  }

  $('new-dm-btn').addEventListener('click', open);
  $('new-dm-link')?.addEventListener('click', open);
  input.addEventListener('input', () => { index = 0; renderOptions(); });
  input.addEventListener('focus', renderOptions);
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      if (!matches.length) return;
      ev.preventDefault();
      index = (index + (ev.key === 'ArrowDown' ? 1 : -1) + matches.length) % matches.length;
      renderOptions();
    } else if (ev.key === 'Enter' && !options.hidden && input.value.trim()) {
      ev.preventDefault();
      choose(index);
    } else if (ev.key === 'Backspace' && !input.value && chosen.length) {
      chosen.pop();
      renderChips();
      renderOptions();
    }
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!chosen.length) return;
    submit.disabled = true;
    showError('');
    try {
      const room = await api('/api/v1/dms', { method: 'POST', body: { users: chosen.map((p) => p.username) } });
      app.upsertRoom(room);
      dialog.close();
      app.openRoom(room.slug, { push: true });
    } catch (err) {
      showError(err.message);
    } finally {
      submit.disabled = chosen.length === 0;
    }
  });
}
