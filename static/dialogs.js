// The room dialogs: create a room, browse public rooms, add people.

import { api } from './api.js';
import { h, icon } from './format.js';
import { toast } from './ui.js';

const $ = (id) => document.getElementById(id);

/**
 * @param {object} app
 *   currentRoom()            the room on screen
 *   hasRoom(slug)            whether the user is a member
 *   upsertRoom(room)         add or update a sidebar room from a JSON room
 *   openRoom(slug, opts)     switch rooms
 *   openWhenJoined(slug)     open `slug` once its room_joined event arrives
 */
export function setupRoomDialogs(app) {
  setupNewRoom(app);
  setupBrowse(app);
  setupAddMember(app);
}

function setupNewRoom(app) {
  const dialog = $('new-room-dialog');
  const form = $('new-room-form');
  const error = $('new-room-error');
  $('new-room-btn').addEventListener('click', () => {
    form.reset();
    error.hidden = true;
    dialog.showModal();
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = form.elements.name.value.trim();
    const kind = form.elements.kind.value;
    if (!name) return;
    const submit = form.querySelector('[type="submit"]');
    submit.disabled = true;
    error.hidden = true;
    try {
      const room = await api('/api/v1/rooms', { method: 'POST', body: { name, kind } });
      app.upsertRoom(room);
      dialog.close();
      app.openRoom(room.slug, { push: true });
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
}

function setupBrowse(app) {
  const dialog = $('browse-dialog');
  const list = $('directory');
  const status = $('browse-status');
  const error = $('browse-error');

  $('browse-rooms-btn').addEventListener('click', async () => {
    list.replaceChildren();
    error.hidden = true;
    status.textContent = 'Loading…';
    status.hidden = false;
    dialog.showModal();
    try {
      const data = await api('/api/v1/rooms/directory');
      const rooms = data.rooms ?? [];
      status.hidden = rooms.length > 0;
      status.textContent = 'No other public rooms yet. Create one!';
      list.replaceChildren(...rooms.map(directoryItem));
    } catch (err) {
      status.hidden = true;
      error.textContent = err.message;
      error.hidden = false;
    }
  });

  function directoryItem(r) {
    const member = app.hasRoom(r.slug);
    const action = h('button', { type: 'button', class: member ? 'btn btn-ghost btn-sm' : 'btn btn-primary btn-sm' },
      member ? 'Open' : 'Join', h('span', { class: 'sr-only' }, ` #${r.name}`));
    action.addEventListener('click', async () => {
      if (app.hasRoom(r.slug)) {
        dialog.close();
        app.openRoom(r.slug, { push: true });
        return;
      }
      action.disabled = true;
      try {
        const joined = await api(`/api/v1/rooms/${encodeURIComponent(r.slug)}/join`, { method: 'POST' });
        dialog.close();
        if (joined && typeof joined.slug === 'string') {
          app.upsertRoom(joined);
          app.openRoom(joined.slug, { push: true });
        } else if (app.hasRoom(r.slug)) {
          app.openRoom(r.slug, { push: true });
        } else {
          app.openWhenJoined(r.slug);
        }
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
        action.disabled = false;
      }
    });
    const meta = Number.isInteger(r.members) ? h('small', {}, `${r.members} member${r.members === 1 ? '' : 's'}`) : null;
    return h('li', { class: 'directory-item' },
      icon(r.kind === 'private' ? 'lock' : 'hash'),
      h('span', { class: 'directory-name' }, r.name, meta),
      action);
  }
}

function setupAddMember(app) {
  const dialog = $('add-member-dialog');
  const form = $('add-member-form');
  const error = $('add-member-error');
  $('add-member-btn').addEventListener('click', () => {
    form.reset();
    error.hidden = true;
    $('add-member-room').textContent = `#${app.currentRoom()?.name ?? ''}`;
    dialog.showModal();
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const room = app.currentRoom();
    const username = form.elements.username.value.trim();
    if (!room || !username) return;
    const submit = form.querySelector('[type="submit"]');
    submit.disabled = true;
    error.hidden = true;
    try {
      await api(`/api/v1/rooms/${encodeURIComponent(room.slug)}/members`, { method: 'POST', body: { username } });
      dialog.close();
      toast(`Added ${username} to #${room.name}.`, { kind: 'info', timeout: 4000 });
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
}
