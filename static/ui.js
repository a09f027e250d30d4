// Page chrome: drawers on small screens, dialogs, toasts, the live region,
// and desktop notifications.

import { h, icon } from './format.js';

const $ = (id) => document.getElementById(id);

export function toast(message, { kind = 'error', timeout = 6000 } = {}) {
  const host = $('toasts');
  const el = h('div', { class: `toast toast-${kind}` },
    icon(kind === 'error' ? 'alert' : 'check'),
    h('span', {}, message),
    h('button', { type: 'button', class: 'icon-btn icon-btn-sm', 'aria-label': 'Dismiss', onclick: () => el.remove() }, icon('x')));
  host.append(el);
  setTimeout(() => el.remove(), timeout);
}

let announceTimer = null;
/** Polite screen-reader announcement; a burst of messages is read in one go. */
export function announce(text) {
  const region = $('announcer');
  region.append(h('p', {}, text));
  while (region.childElementCount > 5) region.firstElementChild.remove();
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => region.replaceChildren(), 15_000);
}

// Drawers: the rooms sidebar and the online list collapse on narrow screens.

const drawers = {
  sidebar: { toggle: 'sidebar-toggle', cls: 'sidebar-open' },
  'online-panel': { toggle: 'online-toggle', cls: 'online-open' },
};

export function drawerIsFloating(id) {
  const el = $(id);
  return getComputedStyle(el).position === 'fixed';
}

export function openDrawer(id) {
  closeDrawers(false);
  const app = $('app');
  app.classList.add(drawers[id].cls);
  $(drawers[id].toggle).setAttribute('aria-expanded', 'true');
  $('backdrop').hidden = false;
  const panel = $(id);
  panel.querySelector('[aria-current="page"], a, button')?.focus();
}

export function closeDrawers(restoreFocus = true) {
  const app = $('app');
  let wasOpen = null;
  for (const [id, d] of Object.entries(drawers)) {
    if (app.classList.contains(d.cls)) wasOpen = id;
    app.classList.remove(d.cls);
    $(d.toggle).setAttribute('aria-expanded', 'false');
  }
  $('backdrop').hidden = true;
  if (restoreFocus && wasOpen) $(drawers[wasOpen].toggle).focus();
}

export function setupChrome() {
  for (const id of Object.keys(drawers)) {
    $(drawers[id].toggle).addEventListener('click', () => {
      const open = $('app').classList.contains(drawers[id].cls);
      if (open) closeDrawers(); else openDrawer(id);
    });
  }
  $('backdrop').addEventListener('click', () => closeDrawers());
  for (const btn of document.querySelectorAll('[data-close-drawer]')) {
    btn.addEventListener('click', () => closeDrawers());
  }
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && !$('backdrop').hidden) closeDrawers();
  });
  // Going wide with a drawer open: drop the overlay state.
  matchMedia('(min-width: 1100px)').addEventListener('change', () => closeDrawers(false));

  for (const dialog of document.querySelectorAll('dialog')) {
    dialog.addEventListener('click', (ev) => {
      if (ev.target === dialog) dialog.close(); // a click on the backdrop
    });
    for (const btn of dialog.querySelectorAll('[data-close-dialog]')) {
      btn.addEventListener('click', () => dialog.close());
    }
  }
}

// Desktop notifications: permission is only ever requested from a click.

export function notificationsSupported() {
  return 'Notification' in window && window.isSecureContext;
}

export function setupNotifyButton() {
  const btn = $('notify-btn');
  if (!notificationsSupported() || Notification.permission !== 'default') return;
  btn.hidden = false;
  btn.addEventListener('click', async () => {
    try {
      await Notification.requestPermission();
    } finally {
      btn.hidden = Notification.permission !== 'default'; // asked: allowed or refused
      if (Notification.permission === 'granted') toast('Desktop notifications are on.', { kind: 'info', timeout: 3000 });
    }
  });
}

export function notify(title, body, tag, onClick) {
  if (!notificationsSupported() || Notification.permission !== 'granted') return;
  try {
    const n = new Notification(title, { body, tag, icon: '/static/favicon.svg' });
    n.onclick = () => {
      window.focus();
      onClick();
      n.close();
    };
  } catch { /* some platforms only allow notifications from a service worker */ }
}
